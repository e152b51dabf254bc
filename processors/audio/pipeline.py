"""Stages shared by the audio processors: decode, VAD, embed, cluster, align."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from config import AudioSettings
from processors.audio import SAMPLE_RATE
from processors.audio.clustering import SpeakerHints, cluster_embeddings
from processors.audio.decode import iter_audio
from processors.audio.embedding import SpeakerEmbedder
from processors.audio.rttm import Turn
from processors.audio.transcription import Word
from processors.audio.vad import speech_regions
from processors.base import Context

FRAME_SECONDS = 0.02
"""Resolution of speaker turns."""


def decode_stage(
    path: Path,
    settings: AudioSettings,
    ctx: Context,
    timings: dict[str, float],
    span: tuple[float, float],
) -> np.ndarray:
    """The file as 16 kHz mono float32, decoded in chunks (progress stage `decode`)."""
    started = time.perf_counter()
    ctx.progress(span[0], "decode")
    pieces: list[np.ndarray] = []
    for piece in iter_audio(path, settings.chunk_seconds):
        pieces.append(piece)
        ctx.check_stop()
    audio = np.concatenate(pieces)
    timings["decode"] = time.perf_counter() - started
    ctx.progress(span[1], "decode")
    return audio


def vad_stage(
    audio: np.ndarray,
    settings: AudioSettings,
    ctx: Context,
    timings: dict[str, float],
    span: tuple[float, float],
) -> list[tuple[float, float]]:
    """Speech regions in seconds (progress stage `vad`)."""
    started = time.perf_counter()
    ctx.progress(span[0], "vad")
    regions = speech_regions(audio, aggressiveness=settings.vad_aggressiveness)
    timings["vad"] = time.perf_counter() - started
    ctx.progress(span[1], "vad")
    return regions


def write_text(ctx: Context, source: Path, text: str, suffix: str = ".txt") -> Path:
    """Write `text` as `<output_dir>/<job_id>/<source stem><suffix>`."""
    out = ctx.output_path(source.stem + suffix)
    out.write_text(text, encoding="utf-8")
    return out


def window_starts(
    regions: Sequence[tuple[float, float]], window: float, hop: float, duration: float
) -> np.ndarray:
    """Start times of the embedding windows: `hop` apart across each region, the last one
    flush with its end; a region shorter than a window gets one window centred on it."""
    starts: list[float] = []
    latest = max(0.0, duration - window)
    for begin, end in regions:
        if end - begin <= window:
            starts.append(min(max((begin + end - window) / 2, 0.0), latest))
            continue
        steps = np.arange(begin, end - window + 1e-9, hop)
        starts.extend(steps.tolist())
        if steps[-1] + window < end - 1e-3:
            starts.append(end - window)
    return np.asarray(starts, dtype=np.float64)


def embed_windows(
    embedder: SpeakerEmbedder,
    audio: np.ndarray,
    starts: np.ndarray,
    window: float,
    batch_size: int,
    on_batch: Callable[[float], None] | None = None,
) -> np.ndarray:
    """One embedding per window, `batch_size` windows at a time (bounded memory)."""
    size = int(window * SAMPLE_RATE)
    padded = audio if audio.size >= size else np.pad(audio, (0, size - audio.size))
    offsets = np.minimum((starts * SAMPLE_RATE).astype(np.int64), padded.size - size)
    out: list[np.ndarray] = []
    for first in range(0, len(offsets), batch_size):
        batch = offsets[first : first + batch_size]
        out.append(embedder.embed(np.stack([padded[o : o + size] for o in batch])))
        if on_batch:
            on_batch(min(1.0, (first + len(batch)) / len(offsets)))
    return np.concatenate(out) if out else np.zeros((0, embedder.dimension), np.float32)


def label_turns(
    regions: Sequence[tuple[float, float]],
    starts: np.ndarray,
    labels: np.ndarray,
    window: float,
) -> list[Turn]:
    """Speaker turns: each speech frame takes the speaker whose windows weigh most on it
    (a window's vote is strongest at its centre); runs of one speaker become turns."""
    if not regions or labels.size == 0:
        return []
    n_speakers = int(labels.max()) + 1
    n_frames = int(np.ceil(max(end for _, end in regions) / FRAME_SECONDS)) + 1
    votes = np.zeros((n_frames, n_speakers), dtype=np.float32)
    width = max(1, round(window / FRAME_SECONDS))
    weight = np.hanning(width + 2)[1:-1].astype(np.float32)
    for start, label in zip(starts, labels, strict=True):
        first = round(start / FRAME_SECONDS)
        span = votes[first : first + width, label]
        span += weight[: span.size]
    turns: list[Turn] = []
    for begin, end in regions:
        a, b = round(begin / FRAME_SECONDS), round(end / FRAME_SECONDS)
        if b <= a:
            continue
        chosen = np.argmax(votes[a:b], axis=1)
        change = np.flatnonzero(np.diff(chosen)) + 1
        for lo, hi in zip(np.r_[0, change], np.r_[change, b - a], strict=True):
            turns.append(
                Turn(
                    max(begin, (a + lo) * FRAME_SECONDS),
                    min(end, (a + hi) * FRAME_SECONDS),
                    speaker_label(int(chosen[lo])),
                )
            )
    return turns


def speaker_label(index: int) -> str:
    return f"SPEAKER_{index:02d}"


@dataclass
class Diarization:
    """Speech regions and speaker turns of one file."""

    regions: list[tuple[float, float]]
    turns: list[Turn]

    @property
    def speakers(self) -> list[str]:
        return sorted({t.speaker for t in self.turns})


def diarize(
    audio: np.ndarray,
    embedder: SpeakerEmbedder,
    settings: AudioSettings,
    hints: SpeakerHints,
    ctx: Context,
    timings: dict[str, float],
    span: tuple[float, float],
) -> Diarization:
    """VAD, windowed embeddings in batches, clustering, and frame-level turns."""
    lo, hi = span
    regions = vad_stage(audio, settings, ctx, timings, span=(lo, lo + 0.1 * (hi - lo)))
    started = time.perf_counter()
    duration = audio.size / SAMPLE_RATE
    starts = window_starts(regions, settings.window_seconds, settings.hop_seconds, duration)

    def on_batch(fraction: float) -> None:
        ctx.check_stop()
        ctx.progress(round(lo + (0.1 + 0.8 * fraction) * (hi - lo), 4), "embed")

    ctx.progress(lo + 0.1 * (hi - lo), "embed")
    embeddings = embed_windows(
        embedder, audio, starts, settings.window_seconds, settings.embed_batch_size, on_batch
    )
    timings["embed"] = time.perf_counter() - started
    started = time.perf_counter()
    ctx.progress(lo + 0.9 * (hi - lo), "cluster")
    labels = cluster_embeddings(embeddings, hints, settings.cluster_threshold)
    turns = label_turns(regions, starts, labels, settings.window_seconds)
    timings["cluster"] = time.perf_counter() - started
    ctx.progress(hi, "cluster")
    return Diarization(regions, turns)


def assign_speakers(words: Sequence[Word], turns: Sequence[Turn]) -> list[int]:
    """For each word, the index of the turn that overlaps it most (else the nearest)."""
    if not turns:
        return [-1] * len(words)
    starts = np.array([t.start for t in turns])
    ends = np.array([t.end for t in turns])
    out: list[int] = []
    for word in words:
        i = int(np.searchsorted(starts, (word.start + word.end) / 2, side="right")) - 1
        candidates = [j for j in (i - 1, i, i + 1) if 0 <= j < len(turns)]
        overlap = [min(ends[j], word.end) - max(starts[j], word.start) for j in candidates]
        best = int(np.argmax(overlap))
        if overlap[best] <= 0:
            middle = (word.start + word.end) / 2
            gaps = [max(starts[j] - middle, middle - ends[j]) for j in candidates]
            best = int(np.argmin(gaps))
        out.append(candidates[best])
    return out
