"""Input paths are confined to the media root."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.base import PermanentError
from processors.media import job_output_path, output_folder_name, resolve_media_path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "media" / "a").mkdir(parents=True)
    (tmp_path / "media" / "a" / "x.wav").write_bytes(b"RIFF")
    (tmp_path / "secret.txt").write_text("no")
    return tmp_path / "media"


def test_relative_path_inside_root_resolves(root: Path) -> None:
    assert resolve_media_path(root, "a/x.wav") == (root / "a" / "x.wav").resolve()


def test_absolute_path_inside_root_resolves(root: Path) -> None:
    assert resolve_media_path(root, str(root / "a" / "x.wav")).name == "x.wav"


@pytest.mark.parametrize("path", ["../secret.txt", "a/../../secret.txt", "/etc/passwd"])
def test_path_escaping_the_root_is_refused(root: Path, path: str) -> None:
    with pytest.raises(PermanentError, match="outside the media root"):
        resolve_media_path(root, path)


def test_symlink_pointing_out_of_the_root_is_refused(root: Path) -> None:
    (root / "link.txt").symlink_to(root.parent / "secret.txt")
    with pytest.raises(PermanentError, match="outside the media root"):
        resolve_media_path(root, "link.txt")


def test_missing_file_is_refused(root: Path) -> None:
    with pytest.raises(PermanentError, match="does not exist"):
        resolve_media_path(root, "a/none.wav")


def test_output_path_is_made_safe(tmp_path: Path) -> None:
    path = job_output_path(tmp_path, "../../evil id", "../x.rttm")
    assert path.parent.parent == tmp_path.resolve() and path.name == "x.rttm"


@pytest.mark.parametrize("job_id", ["..", ".", "a/b", "../../x", "/abs", "é\u2603", "x" * 128])
def test_output_folder_of_any_id_is_a_child_of_the_output_dir(tmp_path: Path, job_id: str) -> None:
    path = job_output_path(tmp_path, job_id, "out.rttm")
    assert path.parent.parent == tmp_path.resolve()
    assert path.parent.name not in (".", "..")


def test_output_folders_of_distinct_ids_are_distinct(tmp_path: Path) -> None:
    ids = ["a/b", "a_b", "a%2Fb", "..", ".", "%2E%2E", "x" * 127 + "a", "x" * 127 + "b"]
    folders = {output_folder_name(i) for i in ids}
    assert len(folders) == len(ids)


def test_a_plain_id_keeps_its_name_as_folder() -> None:
    assert output_folder_name("job-42_a") == "job-42_a"


def test_a_nul_byte_in_a_media_path_is_permanent(root: Path) -> None:
    with pytest.raises(PermanentError, match="NUL"):
        resolve_media_path(root, "a/x\x00.wav")


def test_a_symlink_loop_is_permanent(root: Path) -> None:
    (root / "loop").symlink_to(root / "loop2")
    (root / "loop2").symlink_to(root / "loop")
    with pytest.raises(PermanentError):
        resolve_media_path(root, "loop")


def test_the_missing_file_error_names_the_media_root(root: Path) -> None:
    with pytest.raises(PermanentError, match=str(root.resolve())):
        resolve_media_path(root, "a/none.wav")
