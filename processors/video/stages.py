"""Stage plugins: the interface, the registry and pipeline resolution.

A stage declares its `name`, the stages it `requires` and a batched
`run(frames, state)`. Stages are found among the built-ins, the classes registered
with `@register_stage`, and the `stoker.video_stages` entry-point group (an entry
point's name is the stage name, its object a `Stage` subclass). A pipeline (a list of
names) resolves into dependency order: dependencies are added when not listed, and an
unknown stage or a dependency cycle is a `PipelineError`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch

from config import VideoSettings
from processors.plugins import PluginRegistry

ENTRY_POINT_GROUP = "stoker.video_stages"

#: What `Stage.run` may return: per-frame values with the batch as first dimension
#: (a tensor, a dict of such tensors, or a list), or None for nothing per frame.
StageOutput = torch.Tensor | dict[str, torch.Tensor] | list[Any] | None

S = TypeVar("S", bound=type["Stage"])


class PipelineError(ValueError):
    """A pipeline cannot be built: unknown stage, dependency cycle, bad plugin or settings."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the video stream."""

    width: int
    height: int
    fps: float
    duration: float | None
    """Seconds, when the container declares it."""
    frame_count: int | None
    """Frames, declared or estimated from the duration."""
    codec: str


@dataclass
class Frames:
    """One batch of frames, as every stage receives it."""

    pixels: torch.Tensor
    """(B, 3, H, W) uint8 RGB on the processor's device, at the analysis size, in
    channels-last memory (`pixels.permute(0, 2, 3, 1)` is contiguous)."""
    indices: list[int]
    """Source frame index of each frame (0 = the video's first frame)."""
    timestamps: list[float]
    """Presentation time of each frame, in seconds."""

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class PipelineState:
    """What the stages of one job share.

    `outputs` holds this batch's output of every stage that already ran (so a stage
    reads its dependencies' results there); `memory(name)` is a stage's own dict that
    lives for the whole job (e.g. the last frame of the previous batch).
    """

    device: torch.device
    settings: VideoSettings
    video: VideoInfo
    frame_stride: int = 1
    outputs: dict[str, Any] = field(default_factory=dict)
    _memory: dict[str, dict[str, Any]] = field(default_factory=dict)

    def memory(self, stage_name: str) -> dict[str, Any]:
        return self._memory.setdefault(stage_name, {})


class Stage(abc.ABC):
    """A per-frame analysis step, run on batches of frames.

    Subclasses set `name`, optionally `requires` (names of stages whose outputs they
    read from `state.outputs`) and `store` (False: the output feeds other stages only
    and is not written to `frame_results`), and implement `run`. One instance serves
    every job of a processor: keep per-job data in `state.memory(self.name)`.
    """

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    store: ClassVar[bool] = True

    def __init__(self, settings: VideoSettings) -> None:
        self.settings = settings
        self.device = torch.device("cpu")

    @classmethod  # noqa: B027 - an optional hook
    def check_config(cls, settings: VideoSettings) -> None:
        """Raise PipelineError when `settings` make this stage unusable."""

    def load(self, device: torch.device) -> None:
        """Load models onto `device`; called once, before the first job."""
        self.device = device

    @abc.abstractmethod
    def run(self, frames: Frames, state: PipelineState) -> StageOutput:
        """Analyse one batch; return per-frame values (first dimension = len(frames))."""

    def finish(self, state: PipelineState) -> Any:
        """A JSON-able summary for the job result (None: nothing)."""
        return None


#: Built-in stages live in `builtin_stages`, imported on the first lookup.
stages: PluginRegistry[type[Stage]] = PluginRegistry(
    kind="stage",
    base=Stage,
    group=ENTRY_POINT_GROUP,
    modules=["processors.video.builtin_stages"],
    error=PipelineError,
)


def register_stage(cls: S) -> S:
    """Class decorator: make a stage findable by its `name`."""
    return stages.register(cls)


def available_stages() -> list[str]:
    """Every stage name this install knows, without importing plugins."""
    return sorted(stages.names())


def get_stage_class(name: str) -> type[Stage]:
    """The class of stage `name`, loading its entry point on first use."""
    return stages.get(name)


def resolve_pipeline(names: Sequence[str]) -> list[type[Stage]]:
    """The stages of `names` and their dependencies, each after what it requires.

    Listed order is kept where dependencies allow. Raises PipelineError on an empty
    list, an unknown stage or a dependency cycle (naming the cycle).
    """
    if not names:
        raise PipelineError("the pipeline names no stage")
    order: list[type[Stage]] = []
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise PipelineError(f"stage dependency cycle: {' -> '.join(cycle)}")
        cls = get_stage_class(name)
        path.append(name)
        for dependency in cls.requires:
            visit(dependency)
        path.pop()
        done.add(name)
        order.append(cls)

    for name in names:
        visit(name)
    return order


def check_pipeline(names: Sequence[str], settings: VideoSettings) -> list[type[Stage]]:
    """Resolve `names` and run each stage's `check_config`; raises PipelineError."""
    classes = resolve_pipeline(names)
    for cls in classes:
        try:
            cls.check_config(settings)
        except PipelineError:
            raise
        except Exception as exc:  # a plugin's own error type still means "unusable"
            raise PipelineError(f"stage {cls.name!r}: {exc}") from exc
    return classes
