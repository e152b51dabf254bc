"""Video fixtures: clips generated with PyAV at known cut frames, and a job runner.

The main clip (320x180, 25 fps, 270 frames) has hard cuts at `CUTS` and:
- frames   0-39  a still colour gradient
- frames  40-79  a still noise texture with a little grain per frame
- frames  80-139 shapes moving over a dark background
- frames 140-229 green, a cross-fade to blue over `FADE`, then blue
- frames 230-269 an orange gradient
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import structlog
import torch

from config import Settings, VideoSettings
from processors.base import Context
from processors.video.processor import VideoPipelineProcessor

WIDTH, HEIGHT, FPS = 320, 180, 25
FRAMES = 270
CUTS = [40, 80, 140, 230]
FADE = range(160, 190)
MOVING = range(80, 140)
SHORT_FRAMES = 100  # the short clips hold the first 100 frames: cuts at 40 and 80
FASTSTART = {"movflags": "+faststart"}  # the mp4 index before the data
#: VideoSettings the tests assume, given explicitly so VIDEO_* variables can't leak in.
VIDEO_DEFAULTS: dict[str, Any] = {
    "batch_size": 32,
    "decode_threads": 0,
    "pipelines": {"default": ["scene_cuts", "motion", "quality"]},
    "analysis_width": 192,
    "scene_threshold": 27.0,
    "min_scene_len": 15,
    "embedding_model": None,
    "embedding_input_size": 224,
    "embedding_normalize": True,
}


def _gradient(rgb_a: tuple[int, int, int], rgb_b: tuple[int, int, int]) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, WIDTH)[None, :, None]
    img = np.array(rgb_a) * (1 - ramp) + np.array(rgb_b) * ramp
    return np.broadcast_to(img, (HEIGHT, WIDTH, 3)).astype(np.uint8)


def clip_frame(i: int) -> np.ndarray:
    """Frame `i` of the main clip as (H, W, 3) uint8 RGB."""
    if i < 40:
        return _gradient((30, 160, 150), (60, 120, 190)).copy()
    if i < 80:
        base = np.random.default_rng(7).integers(40, 216, (HEIGHT, WIDTH, 3))
        grain = np.random.default_rng(i).integers(-3, 4, (HEIGHT, WIDTH, 3))
        return (base + grain).clip(0, 255).astype(np.uint8)
    if i < 140:
        img = np.full((HEIGHT, WIDTH, 3), (20, 25, 60), np.uint8)
        j = i - 80
        x = 10 + 4 * j
        img[60:110, x : x + 50] = (220, 200, 40)
        yy, xx = np.ogrid[:HEIGHT, :WIDTH]
        cx, cy = 300 - 3 * j, 40 + j
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 18**2] = (230, 230, 230)
        return img
    green, blue = np.array((40, 170, 60)), np.array((40, 90, 200))
    if i < 230:
        t = min(max((i - FADE.start + 1) / (len(FADE) + 1), 0.0), 1.0)
        img = np.full((HEIGHT, WIDTH, 3), green * (1 - t) + blue * t)
        img[:, :40] = img[:, :40] * 0.6  # a darker band so the frame is not flat
        return img.astype(np.uint8)
    return _gradient((230, 120, 20), (250, 200, 60)).copy()


def encode(
    path: Path,
    frames: int,
    *,
    codec: str = "libx264",
    container_options: dict[str, str] | None = None,
    frame: Callable[[int], np.ndarray] = clip_frame,
    size: tuple[int, int] = (WIDTH, HEIGHT),
) -> Path:
    """Encode `frames` frames of `frame(i)` into `path` with PyAV."""
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=FPS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(frames):
            image = frame(i)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def encode_audio_only(path: Path, seconds: float = 1.0) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        samples = np.sin(np.arange(int(16000 * seconds)) / 10.0).astype(np.float32)
        chunk = 1024
        for start in range(0, len(samples), chunk):
            frame = av.AudioFrame.from_ndarray(
                samples[None, start : start + chunk], format="fltp", layout="mono"
            )
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="session")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A media root holding every clip the video tests use."""
    root = tmp_path_factory.mktemp("media")
    encode(root / "clip.mp4", FRAMES)
    encode(root / "clip.mkv", FRAMES)
    encode(root / "short.mov", SHORT_FRAMES)
    encode(root / "short.mkv", SHORT_FRAMES)
    encode(root / "short.webm", SHORT_FRAMES, codec="libvpx")
    encode(
        root / "big.mp4",
        12,
        frame=lambda i: np.full((720, 1280, 3), 10 * i, np.uint8),
        size=(1280, 720),
    )
    encode_audio_only(root / "audio_only.mp4")
    (root / "corrupt.mp4").write_bytes(np.random.default_rng(1).bytes(50_000))
    data = (root / "clip.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])  # its index is at the end
    data = (root / "clip.mkv").read_bytes()
    (root / "truncated.mkv").write_bytes(data[: len(data) // 2])
    data = encode(root / "faststart.mp4", FRAMES, container_options=FASTSTART).read_bytes()
    (root / "truncated_faststart.mp4").write_bytes(data[: len(data) // 2])
    (root / "clip.avi").write_bytes((root / "short.mkv").read_bytes())
    return root


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def make_video_settings(
    media_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Settings]:
    """Settings on the clips' media root; keyword arguments override VideoSettings."""

    def make(**video: Any) -> Settings:
        return Settings(
            media_root=media_root,
            output_dir=tmp_path_factory.mktemp("output"),
            device="cpu",
            video=VideoSettings(**{**VIDEO_DEFAULTS, **video}),
        )

    return make


@pytest.fixture
def settings(make_video_settings: Callable[..., Settings]) -> Settings:
    return make_video_settings()


@pytest.fixture
def processor(settings: Settings) -> Iterator[VideoPipelineProcessor]:
    p = VideoPipelineProcessor(settings)
    p.load("cpu")
    yield p
    p.close()


@dataclass
class JobRun:
    """What one job produced: its result, its emitted batches and progress calls."""

    result: dict[str, Any] | None = None
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    progress: list[tuple[float, str | None]] = field(default_factory=list)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [row for batch in self.batches for row in batch]

    @property
    def cuts(self) -> list[int]:
        assert self.result is not None
        return [scene["start_frame"] for scene in self.result["scenes"][1:]]


def make_context(
    run: JobRun, settings: Settings, stop: Callable[[], bool] = lambda: False
) -> Context:
    def emit(kind: str, rows: list[dict[str, Any]]) -> None:
        run.kinds.append(kind)
        run.batches.append(rows)

    return Context(
        job_id="t1",
        device="cpu",
        log=structlog.get_logger(),
        settings=settings,
        _emit=emit,
        _progress=lambda fraction, stage: run.progress.append((fraction, stage)),
        _stop=stop,
    )


@pytest.fixture
def run_job(processor: VideoPipelineProcessor, settings: Settings) -> Callable[..., JobRun]:
    """Run a job on the `processor` fixture: `run_job(video_path="clip.mp4", ...)`."""

    def run(**params: Any) -> JobRun:
        job = JobRun()
        job.result = processor.process(processor.Params(**params), make_context(job, settings))
        return job

    return run


@pytest.fixture(scope="session")
def default_run(media_root: Path, tmp_path_factory: pytest.TempPathFactory) -> JobRun:
    """The default pipeline over the main clip, run once for the tests that read it."""
    torch.set_num_threads(1)
    settings = Settings(
        media_root=media_root,
        output_dir=tmp_path_factory.mktemp("output"),
        device="cpu",
        video=VideoSettings(**VIDEO_DEFAULTS),
    )
    p = VideoPipelineProcessor(settings)
    p.load("cpu")
    job = JobRun()
    job.result = p.process(p.Params(video_path="clip.mp4"), make_context(job, settings))
    return job
