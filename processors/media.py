"""Input and output paths confined to the configured folders.

Inputs: a job's path must resolve (symlinks followed) to a file inside the media root;
anything else is a `PermanentError` at once: outside the root, missing, not a file, a NUL
byte, a symlink loop, an unreadable path.

Outputs: each job writes under `<output_dir>/<folder>`, where the folder name is derived
from the job id safely and injectively (`output_folder_name`): letters, digits, `-` and
`_` are kept, every other byte becomes `%XX`, so `..`, `.`, `a/b` and `a_b` get distinct
folders inside the output dir; an id whose encoding would be longer than 180 characters
is shortened to a prefix plus its SHA-256.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from processors.errors import PermanentError

_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_FOLDER = 180


def resolve_media_path(media_root: Path, path: str) -> Path:
    """The real path of `path` (relative to `media_root`, or absolute inside it).

    Raises PermanentError for an empty path, a path that escapes the root (`..`,
    absolute paths elsewhere, symlinks pointing out), or a file that does not exist.
    """
    if not isinstance(path, str) or not path.strip():
        raise PermanentError("no input path given")
    root = Path(media_root).resolve()
    if "\x00" in path:
        raise PermanentError(f"input path {path!r} contains a NUL byte")
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        resolved = candidate.resolve()
        if resolved != root and root not in resolved.parents:
            raise PermanentError(f"input path {path!r} is outside the media root {root}")
        if not resolved.exists():
            raise PermanentError(f"input file {path!r} does not exist under the media root {root}")
        if not resolved.is_file():
            raise PermanentError(f"input path {path!r} is not a file")
    except (RuntimeError, OSError, ValueError) as exc:  # symlink loop, too long, ...
        raise PermanentError(f"input path {path!r} cannot be resolved: {exc}") from None
    return resolved


def output_folder_name(job_id: str) -> str:
    """A folder name for `job_id`: safe (no separators, never `.` or `..`) and injective."""
    encoded = "".join(
        chr(b) if b in _KEEP else f"%{b:02X}" for b in job_id.encode("utf-8", "surrogatepass")
    )
    if len(encoded) <= _MAX_FOLDER:
        return encoded
    digest = hashlib.sha256(job_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{encoded[:100]}~{digest}"


def job_output_path(output_dir: Path, job_id: str, name: str) -> Path:
    """`<output_dir>/<folder for job_id>/<name>` with both parts made safe; creates the folder."""
    folder = Path(output_dir).resolve() / output_folder_name(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    leaf = _SAFE_NAME.sub("_", Path(name).name).lstrip(".") or "output"
    return folder / leaf
