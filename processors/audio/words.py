"""A transcribed word: shared by transcription, which makes words, and the diarization
pipeline, which gives each its speaker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Word:
    """A transcribed word, in seconds from the start of the file."""

    start: float
    end: float
    word: str
    probability: float
    speaker: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "word": self.word,
            "probability": round(self.probability, 4),
        }
        if self.speaker is not None:
            out["speaker"] = self.speaker
        return out
