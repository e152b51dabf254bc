"""Input paths are confined to the media root."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.base import PermanentError
from processors.media import job_output_path, resolve_media_path


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
