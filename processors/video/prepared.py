"""A `video_pipeline` job's input, prepared ahead of the job on a CPU thread.

`PreparedVideo.open` checks the job's pipeline (without loading a stage), opens and
probes the video and decodes its first batch of frames, so the job starts on the device
without waiting for the container or the decoder. The job then takes the reader and the
rest of its frames (`take`) and decodes on as before, in its own prefetch thread.

A prepared input holds an open file and a paused decoder: `close()` releases them (the
job does so when it ends), and so does garbage collection of an input the executor
dropped unprocessed. Memory held ahead is one batch of analysis-size frames.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from config import VideoSettings
from processors.base import Context, PermanentError
from processors.video.decode import DecodedBatch, VideoReader


def _release(batches: Iterator[DecodedBatch] | None, reader: VideoReader | None) -> None:
    """Stop the paused decoder, then close the container it reads."""
    if batches is not None:
        with contextlib.suppress(Exception):
            batches.close()  # type: ignore[attr-defined]
    if reader is not None:
        reader.close()


class PreparedVideo:
    """An opened video with its first batch decoded, or the error opening it raised."""

    def __init__(
        self,
        params: Any,
        *,
        reader: VideoReader | None = None,
        batches: Iterator[DecodedBatch] | None = None,
        first: DecodedBatch | None = None,
        error: PermanentError | None = None,
        seconds: float = 0.0,
    ) -> None:
        self.params = params
        self.reader = reader
        self.first = first
        self.error = error
        self.seconds = seconds
        """Time spent preparing (the job's reported time includes it)."""
        self._batches = batches
        self._taken = False
        # Holds the decoder and the reader, never `self`: dropping an unprocessed input
        # lets it be collected, and collecting it closes the file.
        self._finalizer = weakref.finalize(self, _release, batches, reader)

    @classmethod
    def open(
        cls,
        params: Any,
        ctx: Context,
        settings: VideoSettings,
        check_pipeline: Callable[[Any], object],
    ) -> PreparedVideo:
        started = time.perf_counter()
        try:
            check_pipeline(params)
            reader = VideoReader(
                ctx.input_path(params.video_path),
                batch_size=settings.batch_size,
                frame_stride=params.frame_stride,
                max_frames=params.max_frames,
                start=params.start,
                end=params.end,
                resize=params.resize if params.resize is not None else settings.analysis_width,
                threads=settings.decode_threads,
            )
        except PermanentError as exc:
            return cls(params, error=exc)
        batches = reader.batches()
        try:
            first = next(batches, None)
        except BaseException as exc:
            _release(batches, reader)
            if isinstance(exc, PermanentError):  # a seek the file does not allow
                return cls(params, error=exc)
            raise
        seconds = time.perf_counter() - started
        return cls(params, reader=reader, batches=batches, first=first, seconds=seconds)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def take(self) -> tuple[VideoReader, Iterator[DecodedBatch]]:
        """The reader and all of the job's batches (the one decoded ahead first); raises
        the error opening the video met. Once only; the input still closes as before."""
        if self.error is not None:
            raise self.error
        if self._taken or self.closed or self.reader is None or self._batches is None:
            raise RuntimeError("a prepared video is processed once, before it is closed")
        self._taken = True
        head = [self.first] if self.first is not None else []
        self.first = None
        return self.reader, itertools.chain(head, self._batches)

    def close(self) -> None:
        """Release the decoder and the file (idempotent). Call it from the input's owner,
        once no thread is iterating its batches."""
        self._finalizer()

    def __enter__(self) -> PreparedVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
