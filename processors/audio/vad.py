"""Voice activity detection with webrtcvad, smoothed into speech regions."""

from __future__ import annotations

import numpy as np

from processors.audio import SAMPLE_RATE

FRAME_SECONDS = 0.03


def speech_flags(audio: np.ndarray, aggressiveness: int = 2) -> np.ndarray:
    """One bool per 30 ms frame: webrtcvad's speech decision."""
    import webrtcvad

    vad = webrtcvad.Vad(aggressiveness)
    frame = int(FRAME_SECONDS * SAMPLE_RATE)
    n_frames = audio.size // frame
    flags = np.zeros(n_frames, dtype=bool)
    block = 2000  # frames per conversion, so the int16 copy stays small on long files
    for first in range(0, n_frames, block):
        last = min(n_frames, first + block)
        pcm = (np.clip(audio[first * frame : last * frame], -1.0, 1.0) * 32767).astype("<i2")
        raw = pcm.tobytes()
        step = frame * 2
        for i in range(last - first):
            flags[first + i] = vad.is_speech(raw[i * step : (i + 1) * step], SAMPLE_RATE)
    return flags


def speech_regions(
    audio: np.ndarray,
    *,
    aggressiveness: int = 2,
    min_silence: float = 0.3,
    min_speech: float = 0.2,
) -> list[tuple[float, float]]:
    """Speech regions (start, end) in seconds: pauses shorter than `min_silence` are
    bridged, then bursts shorter than `min_speech` are dropped."""
    flags = speech_flags(audio, aggressiveness)
    regions = regions_from_flags(flags, FRAME_SECONDS, min_silence, min_speech)
    return trim_edges(audio, regions)


def trim_edges(
    audio: np.ndarray, regions: list[tuple[float, float]], drop_db: float = 40.0
) -> list[tuple[float, float]]:
    """Tighten each region to its 10 ms frames within `drop_db` of the region's loud level
    (95th percentile): webrtcvad keeps speech on for a while after it ends."""
    frame = SAMPLE_RATE // 100
    out: list[tuple[float, float]] = []
    for start, end in regions:
        first, last = int(start * SAMPLE_RATE) // frame, int(end * SAMPLE_RATE) // frame
        frames = audio[first * frame : last * frame].reshape(-1, frame)
        if frames.size == 0:
            continue
        level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
        loud = np.flatnonzero(level > np.percentile(level, 95) - drop_db)
        out.append(
            ((first + loud[0]) * frame / SAMPLE_RATE, (first + loud[-1] + 1) * frame / SAMPLE_RATE)
        )
    return out


def regions_from_flags(
    flags: np.ndarray, frame_seconds: float, min_silence: float, min_speech: float
) -> list[tuple[float, float]]:
    """Turn per-frame flags into smoothed (start, end) regions in seconds."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    merged: list[list[int]] = []
    for start, end in runs:
        if merged and (start - merged[-1][1]) * frame_seconds < min_silence:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [
        (start * frame_seconds, end * frame_seconds)
        for start, end in merged
        if (end - start) * frame_seconds >= min_speech
    ]
