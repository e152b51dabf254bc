"""Stages shared by the audio processors: decode, VAD, embed, cluster, align.

Diarization: speech regions (VAD) -> windows every hop -> embeddings, centred on the
recording -> change points cut the regions into segments (`segmentation.py`) -> the
reliable segments are clustered at AUDIO_CLUSTER_THRESHOLD and the rest join their nearest
speaker (`clustering.py`) -> every frame is resegmented against the speakers found
(`resegment.py`) -> runs of one speaker become turns.
"""

from __future__ import annotations

import itertools
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
from processors.audio.resegment import resegment
from processors.audio.rttm import Turn
from processors.audio.segmentation import Segment, centre, segment_at, split_regions
from processors.audio.vad import speech_regions
from processors.audio.words import Word
from processors.base import Context

ONE_VOICE = 0.3
"""Cosine distance (uncentred GE2E embeddings) under which all speech is one voice."""
SAME_VOICE = 0.15
"""Cosine distance between speakers' mean uncentred embeddings under which they are one
voice: centring spreads a voice's own segments too, most where there are few voices."""
MIN_TURN = 0.2
"""Seconds: shorter speech is never a turn. Change points sit at least 0.5 s apart and
from region edges, so only a whole speech region, tightened by the VAD, can be this
short: a click or a breath, dropped."""


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


def label_segments(
    segments: Sequence[Segment],
    hints: SpeakerHints,
    threshold: float,
    min_speaker_seconds: float,
) -> np.ndarray:
    """A speaker index per segment: the reliable segments (a window wholly inside) are
    clustered, weighted by their length; the others, and the window mixtures they hold
    at changes of speaker, can never found a speaker of their own: they join the nearest
    one. Without an exact count, speakers with less than `min_speaker_seconds` of speech
    in all are folded into their nearest neighbour."""
    if not segments:
        return np.zeros(0, dtype=int)
    return cluster_embeddings(
        np.stack([s.embedding for s in segments]),
        hints,
        threshold,
        weights=np.array([s.duration for s in segments]),
        min_weight=min_speaker_seconds,
        core=np.array([s.reliable for s in segments]),
    )


def one_voice(raw: Sequence[Segment], hints: SpeakerHints, min_speaker_seconds: float) -> bool:
    """Whether the segments (embedded without centring) hold a single voice: centring
    only separates voices where there are several, and would split a lone voice."""
    if hints.bounds()[0] > 1:
        return False
    labels = label_segments(raw, hints, ONE_VOICE, min_speaker_seconds)
    return bool(labels.size == 0 or labels.max() == 0)


def merge_close(
    segments: Sequence[Segment], labels: np.ndarray, distance: float, keep: int = 1
) -> np.ndarray:
    """Join, closest first, speakers whose centroids (of these segments' embeddings) are
    less than `distance` apart, keeping at least `keep`; labels renumbered 0..k-1."""
    labels = np.unique(labels, return_inverse=True)[1]
    while labels.max() + 1 > keep:
        centroids = speaker_centroids(segments, labels)
        gaps = 1.0 - centroids @ centroids.T
        np.fill_diagonal(gaps, np.inf)
        a, b = np.unravel_index(int(np.argmin(gaps)), gaps.shape)
        if gaps[a, b] >= distance:
            break
        labels = np.unique(np.where(labels == max(a, b), min(a, b), labels), return_inverse=True)[1]
    return labels


def runs_to_turns(runs: Sequence[tuple[float, float, int]]) -> list[Turn]:
    """Speaker turns from (start, end, speaker index) runs in time order: abutting runs of
    one speaker joined, runs under MIN_TURN dropped, speakers numbered by first
    appearance."""
    turns: list[tuple[float, float, int]] = []
    for start, end, label in runs:
        if end - start < MIN_TURN:
            continue
        if turns and turns[-1][2] == label and start - turns[-1][1] < 1e-6:
            turns[-1] = (turns[-1][0], end, label)
        else:
            turns.append((start, end, label))
    order: dict[int, int] = {}
    for _, _, label in turns:
        order.setdefault(label, len(order))
    return [Turn(a, b, speaker_label(order[label])) for a, b, label in turns]


def segments_to_turns(segments: Sequence[Segment], labels: np.ndarray) -> list[Turn]:
    """Speaker turns straight from labelled segments (see `runs_to_turns`)."""
    return runs_to_turns([(s.start, s.end, int(k)) for s, k in zip(segments, labels, strict=True)])


def speaker_centroids(segments: Sequence[Segment], labels: np.ndarray) -> np.ndarray:
    """(speakers, D): each speaker's length-weighted mean segment embedding, normalised."""
    x = np.stack([s.embedding * s.duration for s in segments])
    sums = np.stack([x[labels == k].sum(axis=0) for k in range(int(labels.max()) + 1)])
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)


def find_turns(
    regions: Sequence[tuple[float, float]],
    starts: np.ndarray,
    embeddings: np.ndarray,
    settings: AudioSettings,
    hints: SpeakerHints,
) -> list[Turn]:
    """Centre, segment, cluster, then resegment against the speakers found. An exact
    hinted count is kept even where resegmentation would let a speaker go; otherwise a
    speaker left with less than `min_speaker_seconds` after resegmentation is dropped and
    the rest resegmented again."""
    centred = centre(embeddings)
    window = settings.window_seconds
    segments = split_regions(regions, starts, centred, window)
    if not segments:
        return []
    raw = [segment_at(s.start, s.end, starts, embeddings, window) for s in segments]
    if one_voice(raw, hints, settings.min_speaker_seconds):
        labels = np.zeros(len(segments), dtype=int)
    else:
        labels = label_segments(
            segments, hints, settings.cluster_threshold, settings.min_speaker_seconds
        )
        if hints.num_speakers is None:
            labels = merge_close(raw, labels, SAME_VOICE, keep=hints.bounds()[0])
    centroids = speaker_centroids(segments, labels)
    runs = resegment(regions, starts, centred, window, centroids)
    if hints.num_speakers is not None:
        if len({k for _, _, k in runs}) < len(centroids):
            return segments_to_turns(segments, labels)
        return runs_to_turns(runs)
    low = hints.bounds()[0]
    while len(centroids) > max(low, 1):
        speech = np.zeros(len(centroids))
        for a, b, k in runs:
            speech[k] += b - a
        weakest = int(np.argmin(speech))
        if speech[weakest] >= settings.min_speaker_seconds:
            break
        centroids = np.delete(centroids, weakest, axis=0)
        runs = resegment(regions, starts, centred, window, centroids)
    return runs_to_turns(runs)


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


@dataclass
class SpeechWindows:
    """A decoded recording, its speech regions and the start times of its embedding
    windows: everything before the speaker-embedding model runs."""

    audio: np.ndarray
    regions: list[tuple[float, float]]
    starts: np.ndarray


def speech_windows(
    audio: np.ndarray,
    settings: AudioSettings,
    ctx: Context,
    timings: dict[str, float],
    span: tuple[float, float],
) -> SpeechWindows:
    """VAD and the embedding windows over the speech it found (CPU only)."""
    regions = vad_stage(audio, settings, ctx, timings, span=span)
    duration = audio.size / SAMPLE_RATE
    starts = window_starts(regions, settings.window_seconds, settings.hop_seconds, duration)
    return SpeechWindows(audio, regions, starts)


def embed_jobs(
    embedder: SpeakerEmbedder,
    jobs: Sequence[SpeechWindows],
    window: float,
    batch_size: int,
    on_batch: Callable[[int, float], None] | None = None,
) -> list[np.ndarray]:
    """The windows of several recordings embedded in one stream of batches of
    `batch_size` (a batch may end one job and begin the next): one array per job, as
    `embed_windows` gives it. `on_batch(job, fraction)` after each batch, for the job
    whose windows it ended with."""
    size = int(window * SAMPLE_RATE)
    sources: list[tuple[int, np.ndarray, int]] = []  # (job, its audio, window offset)
    for index, job in enumerate(jobs):
        audio = (
            job.audio if job.audio.size >= size else np.pad(job.audio, (0, size - job.audio.size))
        )
        offsets = np.minimum((job.starts * SAMPLE_RATE).astype(np.int64), audio.size - size)
        sources.extend((index, audio, int(o)) for o in offsets)
    first_of = np.cumsum([0] + [len(job.starts) for job in jobs])
    out: list[np.ndarray] = []
    for first in range(0, len(sources), batch_size):
        batch = sources[first : first + batch_size]
        out.append(embedder.embed(np.stack([audio[o : o + size] for _, audio, o in batch])))
        if on_batch:
            index = batch[-1][0]
            on_batch(index, (first + len(batch) - first_of[index]) / len(jobs[index].starts))
    flat = np.concatenate(out) if out else np.zeros((0, embedder.dimension), np.float32)
    return [flat[a:b] for a, b in itertools.pairwise(first_of)]


def find_speakers(
    windows: SpeechWindows,
    embeddings: np.ndarray,
    settings: AudioSettings,
    hints: SpeakerHints,
    ctx: Context,
    timings: dict[str, float],
    span: tuple[float, float],
) -> Diarization:
    """Clustering and frame-level turns from one recording's window embeddings."""
    started = time.perf_counter()
    ctx.progress(span[0], "cluster")
    turns = find_turns(windows.regions, windows.starts, embeddings, settings, hints)
    timings["cluster"] = time.perf_counter() - started
    ctx.progress(span[1], "cluster")
    return Diarization(windows.regions, turns)


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
