"""Decode any audio (or a video's audio track) to 16 kHz mono float32, chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from processors.audio import SAMPLE_RATE
from processors.base import PermanentError

SUPPORTED_HINT = "wav, flac, mp3, m4a, ogg, or a video with an audio track"


def iter_audio(path: Path, chunk_seconds: float = 300.0) -> Iterator[np.ndarray]:
    """Yield the file's audio as 16 kHz mono float32 chunks of at most `chunk_seconds`.

    PyAV decodes and resamples; files PyAV cannot open are tried with soundfile.
    Raises PermanentError for files that are unreadable, not audio, or silent of samples.
    """
    chunk = max(1, int(chunk_seconds * SAMPLE_RATE))
    try:
        source = _iter_pyav(path)
        first = next(source, None)
    except _PyAVOpenError as exc:
        source = _iter_soundfile(path, exc)
        first = next(source, None)
    if first is None:
        raise PermanentError(f"{path.name}: the audio track holds no samples")
    yielded = 0
    buffer: list[np.ndarray] = [first]
    size = first.size
    for block in source:
        buffer.append(block)
        size += block.size
        while size >= chunk:
            joined = np.concatenate(buffer)
            yield joined[:chunk]
            yielded += chunk
            rest = joined[chunk:]
            buffer, size = [rest], rest.size
    if size:
        yielded += size
        yield np.concatenate(buffer)
    if yielded == 0:
        raise PermanentError(f"{path.name}: the audio track holds no samples")


def load_audio(path: Path, chunk_seconds: float = 300.0) -> np.ndarray:
    """The whole file as one 16 kHz mono float32 array (230 MB per hour)."""
    return np.concatenate(list(iter_audio(path, chunk_seconds)))


class _PyAVOpenError(Exception):
    pass


def _iter_pyav(path: Path) -> Iterator[np.ndarray]:
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise _PyAVOpenError(str(exc)) from exc
    with container:
        if container.format.name == "tty":
            # FFmpeg "decodes" any text file as ANSI art video: that is not media.
            raise _PyAVOpenError("not an audio or video file")
        if not container.streams.audio:
            kind = "video" if container.streams.video else "file"
            raise PermanentError(f"{path.name}: this {kind} has no audio track")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        # Channels are averaged here, not by FFmpeg: its stereo-to-mono matrix adds +3 dB
        # to identical channels, which can push a loud recording past full scale.
        resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    yield out.to_ndarray().mean(axis=0, dtype=np.float32)
            for out in resampler.resample(None):
                yield out.to_ndarray().mean(axis=0, dtype=np.float32)
        except av.FFmpegError as exc:
            raise PermanentError(f"{path.name}: audio could not be decoded: {exc}") from exc


def _iter_soundfile(path: Path, pyav_error: Exception) -> Iterator[np.ndarray]:
    import soundfile as sf
    from scipy.signal import resample_poly

    try:
        handle = sf.SoundFile(str(path))
    except Exception as exc:  # soundfile raises a bare RuntimeError subclass
        raise PermanentError(
            f"{path.name}: not a readable audio file ({SUPPORTED_HINT}): {pyav_error}"
        ) from exc
    with handle:
        rate = handle.samplerate
        divisor = np.gcd(rate, SAMPLE_RATE)
        for block in handle.blocks(blocksize=rate * 60, dtype="float32", always_2d=True):
            mono = block.mean(axis=1)
            if rate != SAMPLE_RATE:
                # Per-block resampling leaves tiny seams every minute; fine for analysis.
                mono = resample_poly(mono, SAMPLE_RATE // divisor, rate // divisor)
            yield mono.astype(np.float32, copy=False)
