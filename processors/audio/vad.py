"""Voice activity detection with webrtcvad, smoothed into speech regions."""

from __future__ import annotations

from collections.abc import Callable

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
    on_progress: Callable[[float], None] | None = None,
) -> list[tuple[float, float]]:
    """Speech regions (start, end) in seconds: pauses shorter than `min_silence` are
    bridged, then bursts shorter than `min_speech` are dropped."""
    flags = speech_flags(audio, aggressiveness)
    if on_progress:
        on_progress(1.0)
    return regions_from_flags(flags, FRAME_SECONDS, min_silence, min_speech)


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
