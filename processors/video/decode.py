"""Decoding: PyAV with threaded decoding, frames scaled and batched as uint8 RGB.

Frames are scaled to the analysis size before anything else, which is far cheaper
than converting full frames to tensors: for yuv420p video with OpenCV installed, the
Y/U/V planes are resized by OpenCV and each batch converted to RGB in one call
(`PlaneScaler`); otherwise libswscale scales and converts each frame with one cached
context (`SwsScaler`). A background thread decodes ahead into a queue of at most
`PREFETCH_BATCHES` batches, so memory stays bounded by the batch size whatever the
video's length or resolution.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

try:  # optional: a faster scaling path for yuv420p video (see PlaneScaler)
    import cv2
except ImportError:  # pragma: no cover - depends on the install
    cv2 = None

from processors.base import PermanentError
from processors.video.stages import VideoInfo

SUPPORTED_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm"})
PREFETCH_BATCHES = 2
#: Bilinear, as PySceneDetect downscales (cv2.INTER_LINEAR); area averaging costs ~50% more.
INTERPOLATION = "FAST_BILINEAR"


@dataclass
class DecodedBatch:
    """Frames selected for analysis, as a (B, H, W, 3) uint8 array."""

    pixels: np.ndarray
    indices: list[int]
    timestamps: list[float]
    frames_read: int
    """Frames decoded so far in the job (selected or skipped by the stride)."""


@dataclass
class DecodeReport:
    """How decoding ended."""

    frames_read: int = 0
    frames_selected: int = 0
    last_index: int | None = None
    last_timestamp: float | None = None
    damage: str | None = None
    """Why decoding stopped before the end of the file, when it did."""
    decode_seconds: float = 0.0
    """Time spent decoding and scaling (in the background thread)."""


def analysis_size(width: int, height: int, resize: int | tuple[int, int] | None) -> tuple[int, int]:
    """The (width, height) frames are scaled to.

    `resize`: None or 0 = native; an int = that width with the aspect kept (never
    upscaled); (w, h) = exactly that. Sizes are kept even for the YUV scaler.
    """
    if resize is None or resize == 0:
        return width, height
    if isinstance(resize, int):
        if resize >= width:
            return width, height
        new_h = max(2, round(height * resize / width / 2) * 2)
        return max(2, resize - resize % 2), new_h
    w, h = resize
    return max(2, w - w % 2), max(2, h - h % 2)


class SwsScaler:
    """Scales and converts each frame to RGB with libswscale (one cached context)."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._reformatter = VideoReformatter()
        self._frames: list[np.ndarray] = []

    def add(self, frame: av.VideoFrame) -> None:
        scaled = self._reformatter.reformat(
            frame,
            width=self.width,
            height=self.height,
            format="rgb24",
            interpolation=INTERPOLATION,
        )
        self._frames.append(scaled.to_ndarray())

    def __len__(self) -> int:
        return len(self._frames)

    def take(self) -> np.ndarray:
        """The frames added since the last call, as (B, H, W, 3) uint8 RGB."""
        batch, self._frames = np.stack(self._frames), []
        return batch


class PlaneScaler:
    """For yuv420p frames with OpenCV installed: resizes the Y, U and V planes with
    `cv2.resize` (bilinear, no copy of the full frame) and converts the whole batch to
    RGB in one call, as one tall I420 image; about 30% less CPU than libswscale."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._planes: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])

    @staticmethod
    def suits(frame: av.VideoFrame, width: int, height: int) -> bool:
        even = not (frame.width % 2 or frame.height % 2 or width % 2 or height % 2)
        return cv2 is not None and frame.format.name == "yuv420p" and even

    def add(self, frame: av.VideoFrame) -> None:
        sizes = ((self.width, self.height), (self.width // 2, self.height // 2))
        for i, plane in enumerate(frame.planes):
            w, h = (frame.width, frame.height) if i == 0 else (frame.width // 2, frame.height // 2)
            rows = np.frombuffer(plane, np.uint8, count=h * plane.line_size)
            view = rows.reshape(h, plane.line_size)[:, :w]
            out = sizes[0] if i == 0 else sizes[1]
            self._planes[i].append(cv2.resize(view, out, interpolation=cv2.INTER_LINEAR))

    def __len__(self) -> int:
        return len(self._planes[0])

    def take(self) -> np.ndarray:
        """The frames added since the last call, as (B, H, W, 3) uint8 RGB."""
        count = len(self)
        tall = np.concatenate([np.concatenate(p).reshape(-1) for p in self._planes])
        self._planes = ([], [], [])
        rgb = cv2.cvtColor(tall.reshape(-1, self.width), cv2.COLOR_YUV2RGB_I420)
        return rgb.reshape(count, self.height, self.width, 3)


def _fail(path: Path, problem: str, exc: BaseException | None = None) -> PermanentError:
    detail = f": {exc}" if exc is not None else ""
    return PermanentError(f"video {path.name!r} {problem}{detail}")


class VideoReader:
    """Reads one video file's frames in batches.

    Opening checks the file (PermanentError for an unsupported extension, a file that
    is not a readable container, or one without a video stream). `batches()` yields
    `DecodedBatch`es and fills `report`; a decode error part-way (or a file that ends
    before its declared duration) stops decoding and is recorded in `report.damage`.
    """

    def __init__(
        self,
        path: Path,
        *,
        batch_size: int,
        frame_stride: int = 1,
        max_frames: int | None = None,
        start: float | None = None,
        end: float | None = None,
        resize: int | tuple[int, int] | None = None,
        threads: int = 0,
        fast_scaling: bool = True,
    ) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in SUPPORTED_EXTENSIONS:
            raise _fail(
                self.path,
                "has an unsupported extension; use one of "
                + ", ".join(sorted(SUPPORTED_EXTENSIONS)),
            )
        self.batch_size = batch_size
        self.frame_stride = frame_stride
        self.max_frames = max_frames
        self.start = start or 0.0
        self.end = end
        self.threads = threads
        self.fast_scaling = fast_scaling
        self.report = DecodeReport()
        self._closed = False
        try:
            self._container = av.open(str(self.path), metadata_errors="ignore")
        except av.error.FFmpegError as exc:
            raise _fail(self.path, "is corrupt, truncated or not a video file", exc) from exc
        if not self._container.streams.video:
            kinds = sorted({s.type for s in self._container.streams}) or ["no"]
            self._container.close()
            raise _fail(self.path, f"has no video stream ({', '.join(kinds)} streams only)")
        self._stream = self._container.streams.video[0]
        self.info = self._probe()
        self.size = analysis_size(self.info.width, self.info.height, resize)

    def _probe(self) -> VideoInfo:
        stream = self._stream
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            self._container.close()
            raise _fail(self.path, "has a video stream without a frame size (corrupt?)")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 25.0
        duration: float | None = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif self._container.duration:
            duration = self._container.duration / av.time_base
        frame_count = stream.frames or (round(duration * fps) if duration else None)
        return VideoInfo(
            width=ctx.width,
            height=ctx.height,
            fps=fps,
            duration=duration,
            frame_count=frame_count,
            codec=ctx.name,
        )

    @property
    def start_time(self) -> float:
        """The stream's first presentation time (usually 0)."""
        stream = self._stream
        if stream.start_time is not None and stream.time_base:
            return float(stream.start_time * stream.time_base)
        return 0.0

    def expected_frames(self) -> int | None:
        """Frames this read will decode, as far as the container tells (for progress)."""
        if self.info.frame_count is None:
            return None
        total = self.info.frame_count
        begin = round(self.start * self.info.fps)
        stop = total if self.end is None else min(total, round(self.end * self.info.fps))
        total = max(0, stop - begin)
        if self.max_frames is not None:
            total = min(total, self.max_frames * self.frame_stride)
        return total

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._container.close()

    def batches(self) -> Iterator[DecodedBatch]:
        """Decode, select every `frame_stride`-th frame, and yield them in batches."""
        stream = self._stream
        stream.thread_type = "FRAME"  # measured ~2x faster than AUTO (frame+slice) here
        stream.codec_context.thread_count = self.threads
        if self.start > 0:
            offset = int((self.start + self.start_time) / stream.time_base)
            try:
                self._container.seek(offset, stream=stream, backward=True)
            except av.error.FFmpegError as exc:
                raise _fail(self.path, f"cannot seek to {self.start} s", exc) from exc
        width, height = self.size
        scaler: SwsScaler | PlaneScaler | None = None
        report = self.report
        fps, t0 = self.info.fps, self.start_time
        indices: list[int] = []
        stamps: list[float] = []
        first_index: int | None = None
        index = -1
        limit_reached = False
        clock = time.perf_counter()
        frames = self._container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                report.damage = (
                    f"decoding failed after {report.frames_read} frames "
                    f"(truncated or corrupt data?): {exc}"
                )
                break
            stamp = float(frame.time) - t0 if frame.time is not None else (index + 1) / fps
            if self.start > 0 and stamp < self.start - 0.5 / fps:
                continue  # before `start`: the seek lands on the keyframe before it
            if self.end is not None and stamp >= self.end:
                limit_reached = True
                break
            index = round(stamp * fps) if first_index is None and self.start > 0 else index + 1
            if first_index is None:
                first_index = index
            report.frames_read += 1
            report.last_index, report.last_timestamp = index, stamp
            if (index - first_index) % self.frame_stride:
                continue
            if scaler is None:
                use_planes = self.fast_scaling and PlaneScaler.suits(frame, width, height)
                scaler = (PlaneScaler if use_planes else SwsScaler)(width, height)
            scaler.add(frame)
            indices.append(index)
            stamps.append(round(stamp, 6))
            report.frames_selected += 1
            done = self.max_frames is not None and report.frames_selected >= self.max_frames
            if len(scaler) == self.batch_size or done:
                pixels = scaler.take()
                report.decode_seconds += time.perf_counter() - clock
                yield DecodedBatch(pixels, indices, stamps, report.frames_read)
                clock = time.perf_counter()
                indices, stamps = [], []
            if done:
                limit_reached = True
                break
        if scaler is not None and len(scaler):
            pixels = scaler.take()
            report.decode_seconds += time.perf_counter() - clock
            yield DecodedBatch(pixels, indices, stamps, report.frames_read)
        if not limit_reached and report.damage is None:
            report.damage = self._ended_early()

    def _ended_early(self) -> str | None:
        """A message when the stream ended well before the duration the file declares."""
        info, report = self.info, self.report
        if info.duration is None or report.last_timestamp is None:
            return None
        reached = report.last_timestamp + 1 / info.fps
        missing = info.duration - reached
        if missing > max(3 / info.fps, 0.01 * info.duration):
            return (
                f"the video stream ends at {reached:.2f} s but the file declares "
                f"{info.duration:.2f} s (truncated?)"
            )
        return None


class Prefetcher:
    """Runs an iterator in a background thread, at most `depth` items ahead.

    Iterate it to get the items (a producer's exception is re-raised here); `close()`
    (also on leaving a `with` block) stops the producer and waits for it.
    """

    _DONE = object()

    def __init__(self, source: Iterator[Any], depth: int = PREFETCH_BATCHES) -> None:
        self._source = source
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="video-decode", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
