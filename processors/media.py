"""Input and output paths confined to the configured folders."""

from __future__ import annotations

import re
from pathlib import Path

from processors.base import PermanentError

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def resolve_media_path(media_root: Path, path: str) -> Path:
    """The real path of `path` (relative to `media_root`, or absolute inside it).

    Raises PermanentError for an empty path, a path that escapes the root (`..`,
    absolute paths elsewhere, symlinks pointing out), or a file that does not exist.
    """
    if not path or not str(path).strip():
        raise PermanentError("no input path given")
    root = Path(media_root).resolve()
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise PermanentError(f"input path {path!r} is outside the media root")
    if not resolved.exists():
        raise PermanentError(f"input file {path!r} does not exist under the media root")
    if not resolved.is_file():
        raise PermanentError(f"input path {path!r} is not a file")
    return resolved


def job_output_path(output_dir: Path, job_id: str, name: str) -> Path:
    """`<output_dir>/<job_id>/<name>` with both parts made safe; creates the folder."""
    folder = Path(output_dir).resolve() / _SAFE_NAME.sub("_", job_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / _SAFE_NAME.sub("_", Path(name).name)
