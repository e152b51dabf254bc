"""Built-in stages: `scene_cuts`, `motion`, `quality`, `embedding` and their helpers.

`hsv` and `gray` compute shared intermediates (not stored per frame); the others
read them through `state.outputs`. All work is done per batch: torch ops on the
device, or on CPU OpenCV's SIMD routines when OpenCV is installed (the torch ops on
CPU are several times slower on small frames); both paths give the same values.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from config import VideoSettings
from processors.video.cut_filter import MergeFilter
from processors.video.stages import (
    Frames,
    PipelineError,
    PipelineState,
    Stage,
    StageOutput,
    register_stage,
)

_LUMA = (0.299, 0.587, 0.114)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


try:  # OpenCV's SIMD colour conversion is ~10x faster than a chain of torch ops on CPU
    import cv2
except ImportError:  # pragma: no cover - depends on the install
    cv2 = None


def rgb_to_hsv(pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 RGB -> (B, H, W, 3) uint8 HSV on OpenCV's 8-bit scale.

    H is in [0, 180) (degrees / 2), S and V in [0, 255], as `cv2.COLOR_RGB2HSV` gives.
    On CPU the whole batch is one OpenCV call when OpenCV is installed; otherwise (and
    on GPU) it is batched torch math.
    """
    if pixels.device.type == "cpu" and cv2 is not None:
        b, _, h, w = pixels.shape
        rgb = pixels.permute(0, 2, 3, 1).contiguous().numpy().reshape(b * h, w, 3)
        return torch.from_numpy(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).reshape(b, h, w, 3))
    return _rgb_to_hsv_torch(pixels)


def _rgb_to_hsv_torch(pixels: torch.Tensor) -> torch.Tensor:
    rgb = pixels.to(torch.float32)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    value = torch.maximum(torch.maximum(r, g), b)
    chroma = value - torch.minimum(torch.minimum(r, g), b)
    sat = chroma * 255.0 / value.clamp(min=1.0)
    # Hue sector by the largest channel, red first then green, as OpenCV breaks ties.
    is_r = (r == value).to(torch.float32)
    is_g = (g == value).to(torch.float32) * (1.0 - is_r)
    is_b = 1.0 - is_r - is_g
    hue = is_r * (g - b) + is_g * (b - r + 2.0 * chroma) + is_b * (r - g + 4.0 * chroma)
    hue = torch.remainder(hue * 30.0 / chroma.clamp(min=1.0), 180.0)
    hsv = torch.stack((hue, sat, value), dim=-1).round_()
    hsv[..., 0].remainder_(180.0)
    return hsv.to(torch.uint8)


def rgb_to_gray(pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 RGB -> (B, H, W) uint8 luma (BT.601)."""
    if pixels.device.type == "cpu" and cv2 is not None:
        b, _, h, w = pixels.shape
        rgb = pixels.permute(0, 2, 3, 1).contiguous().numpy().reshape(b * h, w, 3)
        return torch.from_numpy(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).reshape(b, h, w))
    rgb = pixels.to(torch.float32)
    gray = rgb[:, 0] * _LUMA[0] + rgb[:, 1] * _LUMA[1] + rgb[:, 2] * _LUMA[2]
    return gray.round_().clamp_(0, 255).to(torch.uint8)


def previous_frames(batch: torch.Tensor, memory: dict[str, Any]) -> torch.Tensor:
    """Each frame's predecessor, carrying the last frame across batches; the job's
    very first frame is its own predecessor (so its difference is zero)."""
    previous = memory.get("last")
    memory["last"] = batch[-1:].clone()
    if previous is None:
        previous = batch[:1]
    return torch.cat((previous, batch[:-1]))


def abs_diff_u8(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| of two uint8 tensors without widening them."""
    return torch.maximum(a, b) - torch.minimum(a, b)


def content_scores(hsv: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """Per frame: mean over pixels of |dH| + |dS| + |dV|, divided by 3 (0-255 scale).

    `hsv` is (B, H, W, 3) uint8, `previous` (1, H, W, 3): the frame before the batch.
    Hue differences are plain |dH| on OpenCV's 0-179 scale, as PySceneDetect takes them:
    folding them onto the hue circle made a cut from a flat red frame (hue 0) to a test
    pattern score 18.7 instead of 27.8, under the threshold of 27.
    """
    b, h, w, _ = hsv.shape
    if hsv.device.type == "cpu" and cv2 is not None:
        tall = hsv.numpy().reshape(b * h, w, 3)
        delta = np.empty_like(tall)
        cv2.absdiff(tall[:h], previous.numpy().reshape(h, w, 3), dst=delta[:h])
        if b > 1:
            cv2.absdiff(tall[h:], tall[:-h], dst=delta[h:])
        # Per-frame sums (cv2.reduce is several times faster than torch's u8 sums here).
        total = _row_sums(delta.reshape(b, -1))
        return torch.from_numpy(total).to(torch.float32) / (h * w * 3)
    delta = abs_diff_u8(hsv, torch.cat((previous, hsv[:-1]))).reshape(b, -1)
    return delta.sum(dim=1, dtype=torch.float32) / delta.shape[1]


def _row_sums(rows: np.ndarray) -> np.ndarray:
    """Sum of each row of a 2-D uint8 array, as int64."""
    sums = cv2.reduce(rows, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
    return sums.reshape(-1).astype(np.int64)


def frame_mean_var(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame mean and (population) variance of a (B, ...) float tensor."""
    flat = x.reshape(x.shape[0], -1)
    n = flat.shape[1]
    mean = flat.sum(dim=1) / n
    centred = flat - mean.unsqueeze(1)
    return mean, centred.square_().sum(dim=1) / n


def laplacian(gray: torch.Tensor) -> torch.Tensor:
    """The 4-neighbour Laplacian of (B, H, W) float frames, borders dropped."""
    out = gray[:, 1:-1, :-2] + gray[:, 1:-1, 2:]
    out += gray[:, :-2, 1:-1]
    out += gray[:, 2:, 1:-1]
    out -= 4.0 * gray[:, 1:-1, 1:-1]
    return out


@register_stage
class HsvStage(Stage):
    """Frames in HSV, (B, H, W, 3) uint8 on OpenCV's scale, for the colour stages."""

    name = "hsv"
    store = False

    def run(self, frames: Frames, state: PipelineState) -> StageOutput:
        return rgb_to_hsv(frames.pixels)


@register_stage
class GrayStage(Stage):
    """Frames as BT.601 luma, (B, H, W) uint8, for the intensity stages."""

    name = "gray"
    store = False

    def run(self, frames: Frames, state: PipelineState) -> StageOutput:
        return rgb_to_gray(frames.pixels)


@register_stage
class SceneCutsStage(Stage):
    """Content-aware hard cuts, scored as PySceneDetect's ContentDetector scores them.

    A frame's score is the mean over pixels of |dH| + |dS| + |dV| between it and the
    previous analysed frame, divided by 3 (0-255 scale), hue on OpenCV's 0-179 scale
    compared plainly as PySceneDetect does (see `content_scores`). A frame whose score
    reaches `scene_threshold` is a cut when the last frame above it (or the first analysed
    frame) is at least `min_scene_len` source frames before; after the first cut, a closer
    run of changing frames is merged into one cut at its last frame (`cut_filter`:
    PySceneDetect's MERGE mode). Per frame: {"score": float, "cut": bool}
    (a merged cut, decided frames later, shows only in the summary); summary: the cuts.
    """

    name = "scene_cuts"
    requires = ("hsv",)

    def run(self, frames: Frames, state: PipelineState) -> StageOutput:
        memory = state.memory(self.name)
        hsv = state.outputs["hsv"]
        previous = memory.get("last", hsv[:1])
        memory["last"] = hsv[-1:].clone()
        scores = content_scores(hsv, previous).cpu()
        if "cuts" not in memory:
            memory["cuts"] = []
            memory["filter"] = MergeFilter(self.settings.min_scene_len)
            memory["first"] = frames.indices[0]
        threshold, flt = self.settings.scene_threshold, memory["filter"]
        cut_flags: list[bool] = []
        for i, score in enumerate(scores.tolist()):
            index = frames.indices[i]
            if index == memory["first"]:  # no previous frame: no score, as in PySceneDetect
                cut_flags.append(False)
                continue
            above = score >= threshold
            if above:
                memory["above"] = (index, frames.timestamps[i], round(score, 3))
            decided = flt.step(index, above)
            for cut in decided:
                frame, seconds, cut_score = memory["above"]
                assert frame == cut
                memory["cuts"].append({"frame": frame, "seconds": seconds, "score": cut_score})
            cut_flags.append(index in decided)
        return {"score": scores, "cut": torch.tensor(cut_flags)}

    def finish(self, state: PipelineState) -> Any:
        return {
            "cuts": state.memory(self.name).get("cuts", []),
            "threshold": self.settings.scene_threshold,
            "min_scene_len": self.settings.min_scene_len,
        }


@register_stage
class MotionStage(Stage):
    """Inter-frame difference energy: mean squared luma change (0-1 scale) per frame.

    0 for the job's first frame; about 0 for a still shot; grows with the area and
    contrast of what moves.
    """

    name = "motion"
    requires = ("gray",)

    def run(self, frames: Frames, state: PipelineState) -> StageOutput:
        gray = state.outputs["gray"]
        memory = state.memory(self.name)
        if gray.device.type == "cpu" and cv2 is not None:
            frames_np = gray.numpy()
            previous = memory.get("last", gray[:1]).numpy()[0]
            memory["last"] = gray[-1:].clone()
            energy = []
            for frame in frames_np:
                energy.append(cv2.norm(frame, previous, cv2.NORM_L2SQR))
                previous = frame
            return torch.tensor(energy, dtype=torch.float64) / (frames_np[0].size * 255.0**2)
        gray_f = gray.to(torch.float32)
        delta = (gray_f - previous_frames(gray_f, memory)) / 255.0
        return delta.square_().mean(dim=(1, 2))


@register_stage
class QualityStage(Stage):
    """Brightness (mean luma), contrast (luma standard deviation), both 0-255, and
    sharpness (variance of the luma Laplacian inside the border, at the analysis size)."""

    name = "quality"
    requires = ("gray",)

    def run(self, frames: Frames, state: PipelineState) -> StageOutput:
        gray = state.outputs["gray"]
        if gray.device.type == "cpu" and cv2 is not None:
            stats = []
            for frame in gray.numpy():
                mean, std = cv2.meanStdDev(frame)
                lap = cv2.Laplacian(frame, cv2.CV_16S, ksize=1)[1:-1, 1:-1]
                _, lap_std = cv2.meanStdDev(lap)
                stats.append((mean[0, 0], std[0, 0], lap_std[0, 0] ** 2))
            columns = torch.tensor(stats, dtype=torch.float64).T
            return {"brightness": columns[0], "contrast": columns[1], "sharpness": columns[2]}
        gray_f = gray.to(torch.float32)
        mean, var = frame_mean_var(gray_f)
        _, sharpness = frame_mean_var(laplacian(gray_f))
        return {"brightness": mean, "contrast": var.sqrt_(), "sharpness": sharpness}


def load_model(path: Path, device: torch.device) -> Callable[[torch.Tensor], Any]:
    """A model file as a callable: `torch.export` (.pt2), TorchScript, or (when
    torchvision imports) a pickled torchvision model."""
    if path.suffix == ".pt2":
        return torch.export.load(str(path)).module().to(device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript still loads
            return torch.jit.load(str(path), map_location=device).eval()
    except RuntimeError as script_error:
        try:
            import torchvision  # noqa: F401 - registers the classes the pickle names
        except ImportError:
            raise PipelineError(
                f"embedding model {path} is not a TorchScript file ({script_error}); "
                "other model files need torchvision"
            ) from script_error
        try:
            model = torch.load(str(path), map_location=device, weights_only=False)
        except Exception as exc:  # any unreadable file is a configuration problem
            raise PipelineError(f"embedding model {path} cannot be loaded: {exc}") from exc
        if not isinstance(model, torch.nn.Module):
            raise PipelineError(f"embedding model {path} holds no torch module") from None
        return model.eval()


@register_stage
class EmbeddingStage(Stage):
    """A vector per frame from the model file in `embedding_model`, run in batches
    (TorchScript, `torch.export` .pt2, or a pickled torchvision model).

    Frames are resized to `embedding_input_size` squared, scaled to [0, 1] and
    ImageNet-normalized; the output is flattened per frame and, with
    `embedding_normalize`, L2-normalized. Stored as a list of floats.
    """

    name = "embedding"

    @classmethod
    def check_config(cls, settings: VideoSettings) -> None:
        if settings.embedding_model is None:
            raise PipelineError("the embedding stage needs VIDEO_EMBEDDING_MODEL (a model file)")
        if not Path(settings.embedding_model).is_file():
            raise PipelineError(f"embedding model file {settings.embedding_model} does not exist")

    def __init__(self, settings: VideoSettings) -> None:
        super().__init__(settings)
        self.model: Callable[[torch.Tensor], Any] | None = None

    def load(self, device: torch.device) -> None:
        super().load(device)
        self.check_config(self.settings)
        assert self.settings.embedding_model is not None
        self.model = load_model(Path(self.settings.embedding_model), device)
        self._mean = torch.tensor(_IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(_IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def run(self, frames: Frames, state: PipelineState) -> StageOutput:
        if self.model is None:
            self.load(frames.pixels.device)
        assert self.model is not None
        size = self.settings.embedding_input_size
        x = frames.pixels.to(torch.float32).div_(255.0)
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = (x - self._mean) / self._std
        out = self.model(x)
        if isinstance(out, tuple | list):
            out = out[0]
        vectors = out.reshape(out.shape[0], -1).to(torch.float32)
        if self.settings.embedding_normalize:
            vectors = F.normalize(vectors, dim=1)
        return vectors
