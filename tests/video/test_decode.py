"""Decoding: the two scaling paths, batching and the reader's bookkeeping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from processors.video.decode import PlaneScaler, VideoReader, analysis_size
from tests.video.conftest import SHORT_FRAMES


def read_all(path: Path, **options: object) -> np.ndarray:
    reader = VideoReader(path, batch_size=16, resize=160, **options)  # type: ignore[arg-type]
    try:
        return np.concatenate([batch.pixels for batch in reader.batches()])
    finally:
        reader.close()


def test_opencv_plane_scaling_matches_libswscale(media_root: Path) -> None:
    pytest.importorskip("cv2")
    fast = read_all(media_root / "short.mkv", fast_scaling=True)
    sws = read_all(media_root / "short.mkv", fast_scaling=False)
    assert fast.shape == sws.shape == (SHORT_FRAMES, 90, 160, 3)
    delta = np.abs(fast.astype(int) - sws.astype(int))
    smooth = [*range(0, 40), *range(80, SHORT_FRAMES)]  # pixel noise aliases differently
    assert delta[smooth].mean() < 3.0
    means = np.abs(fast.mean(axis=(1, 2, 3)) - sws.mean(axis=(1, 2, 3)))
    assert means.max() < 3.0


def test_plane_scaling_only_for_even_yuv420p(media_root: Path) -> None:
    pytest.importorskip("cv2")
    import av

    with av.open(str(media_root / "short.mkv")) as container:
        frame = next(container.decode(video=0))
    assert PlaneScaler.suits(frame, 160, 90)
    assert not PlaneScaler.suits(frame, 161, 90)
    assert not PlaneScaler.suits(frame.reformat(format="rgb24"), 160, 90)


def test_analysis_size_keeps_aspect_and_never_upscales() -> None:
    assert analysis_size(1920, 1080, 256) == (256, 144)
    assert analysis_size(320, 180, 640) == (320, 180)
    assert analysis_size(320, 180, 0) == (320, 180)
    assert analysis_size(320, 180, (101, 51)) == (100, 50)
