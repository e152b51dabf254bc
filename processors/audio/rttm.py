"""RTTM: `SPEAKER <file> 1 <onset> <duration> <NA> <NA> <label> <NA> <NA>` per turn."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_UNSAFE = re.compile(r"\s+")


@dataclass(frozen=True)
class Turn:
    """A stretch of speech by one speaker, in seconds."""

    start: float
    end: float
    speaker: str


def format_rttm(turns: Iterable[Turn], file_id: str) -> str:
    """RTTM text for `turns` (file ids and labels cannot hold whitespace: it becomes `_`)."""
    uri = _UNSAFE.sub("_", file_id) or "audio"
    return "".join(
        f"SPEAKER {uri} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> "
        f"{_UNSAFE.sub('_', t.speaker)} <NA> <NA>\n"
        for t in turns
        if t.end > t.start
    )


def parse_rttm(text: str) -> dict[str, list[Turn]]:
    """Turns per file id from RTTM text; non-SPEAKER lines and comments are skipped."""
    files: dict[str, list[Turn]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith((";", "#")) or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise ValueError(f"RTTM line {number}: expected 10 fields, got {len(fields)}")
        onset, duration = float(fields[3]), float(fields[4])
        files.setdefault(fields[1], []).append(Turn(onset, onset + duration, fields[7]))
    return files


def read_rttm(path: Path) -> dict[str, list[Turn]]:
    """Turns per file id from an RTTM file."""
    return parse_rttm(Path(path).read_text())
