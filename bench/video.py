"""Benchmark: the video pipeline against PySceneDetect's ContentDetector, same file, same run.

Generates a clip with PyAV (default 640x360, 30 fps, 30 s) whose hard cuts are known:
scenes of a panning texture, moving shapes on a gradient and grainy colour fields,
plus cross-fades that are not cuts. Then, alternating in each round, it runs
PySceneDetect (`scenedetect.detect(path, ContentDetector())`) and our processor
(`scene_cuts` alone, which does the same work, and the default pipeline), and prints
frames/s (best and median of the rounds) and frame-exact F1 for each.

    .venv/bin/python bench/video.py [--seconds 30] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_clip(
    path: Path, width: int, height: int, fps: int, seconds: float, seed: int = 1
) -> tuple[int, list[int]]:
    """Encode the benchmark clip; returns (frame count, hard-cut frames)."""
    rng = np.random.default_rng(seed)
    total = int(seconds * fps)
    # Scene lengths of 1.5-4 s; every third boundary is a 20-frame cross-fade, not a cut.
    bounds, kinds = [0], []
    while bounds[-1] < total:
        bounds.append(min(total, bounds[-1] + int(rng.uniform(1.5, 4.0) * fps)))
        kinds.append(int(rng.integers(0, 3)))
    fades = {b for i, b in enumerate(bounds[1:-1], 1) if i % 3 == 0}
    cuts = [b for b in bounds[1:-1] if b not in fades]
    texture = rng.integers(0, 256, (height // 8 + 2, width // 8 + 64, 3)).astype(np.float32)
    texture = np.kron(texture, np.ones((8, 8, 1), np.float32))  # blocky, then blurred by pan
    yy, xx = np.mgrid[:height, :width]
    palettes = rng.integers(20, 236, (len(kinds), 2, 3))

    def scene_frame(k: int, j: int) -> np.ndarray:
        a, b = palettes[k]
        if kinds[k] == 0:  # a panning texture, tinted
            x = (3 * j + 17 * k) % 400
            img = texture[:height, x : x + width] * 0.6 + a * 0.4
        elif kinds[k] == 1:  # shapes moving over a gradient
            img = a + (b - a) * (xx / width)[..., None]
            cx, cy = (40 + 5 * j) % width, height // 2 + int(60 * np.sin(j / 9))
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < 40**2] = b[::-1]
            img[60:120, (width - 6 * j) % width : (width - 6 * j) % width + 70] = 255 - a
        else:  # a colour field with grain
            img = np.broadcast_to(a, (height, width, 3)) + rng.normal(0, 4, (height, width, 3))
        return np.asarray(img)

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for i in range(total):
            k = int(np.searchsorted(bounds, i, side="right")) - 1
            img = scene_frame(k, i - bounds[k])
            start_next = bounds[k + 1] if k + 1 < len(bounds) else total
            if start_next in fades and i >= start_next - 20 and k + 1 < len(kinds):
                t = (i - (start_next - 20) + 1) / 21
                img = img * (1 - t) + scene_frame(k + 1, 0) * t
            frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), "rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return total, cuts


def f1(found: list[int], truth: list[int]) -> float:
    hits = len(set(found) & set(truth))
    if not hits:
        return 0.0
    precision, recall = hits / len(found), hits / len(truth)
    return 2 * precision * recall / (precision + recall)


def run_pyscenedetect(path: Path) -> list[int]:
    from scenedetect import ContentDetector, detect

    return [start.frame_num for start, _ in detect(str(path), ContentDetector())[1:]]


def ours(
    path: Path, stages: list[str] | None, batch_size: int, width: int | None
) -> Callable[[], list[int]]:
    import structlog

    from config import Settings, VideoSettings
    from processors.base import Context
    from processors.video.processor import VideoPipelineProcessor

    settings = Settings(
        media_root=path.parent,
        output_dir=path.parent / "out",
        video=VideoSettings(batch_size=batch_size),
    )
    processor = VideoPipelineProcessor(settings)
    processor.load("cpu")
    rows: list[int] = []

    def run() -> list[int]:
        ctx = Context(
            job_id="bench",
            device="cpu",
            log=structlog.get_logger(),
            settings=settings,
            _emit=lambda kind, batch: rows.append(len(batch)),
        )
        result: dict[str, Any] = processor.process(
            processor.Params(video_path=path.name, stages=stages, resize=width), ctx
        )
        return [scene["start_frame"] for scene in result["scenes"][1:]]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--keep", type=Path, help="also save the clip here")
    parser.add_argument(
        "--analysis-width", type=int, help="our analysis width (default VIDEO_ANALYSIS_WIDTH)"
    )
    args = parser.parse_args()

    import structlog
    import torch

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    # OpenCV keeps its default threads: PySceneDetect's decoding and ours both use it.
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.mp4"
        frames, cuts = make_clip(path, args.width, args.height, args.fps, args.seconds)
        if args.keep:
            args.keep.write_bytes(path.read_bytes())
        print(
            f"clip: {args.width}x{args.height} {args.fps} fps, {frames} frames, "
            f"{len(cuts)} hard cuts, {os.cpu_count()} CPUs, torch threads {args.threads}"
        )
        contenders: dict[str, Callable[[], list[int]]] = {
            "pyscenedetect ContentDetector": lambda: run_pyscenedetect(path),
            "stoker scene_cuts": ours(path, ["scene_cuts"], args.batch_size, args.analysis_width),
            "stoker default pipeline": ours(path, None, args.batch_size, args.analysis_width),
        }
        for run in contenders.values():
            run()  # warm-up: imports, first-call allocations
        seconds: dict[str, list[float]] = {name: [] for name in contenders}
        cpu: dict[str, list[float]] = {name: [] for name in contenders}
        found: dict[str, list[int]] = {}
        load_before = os.getloadavg()[0]
        for _ in range(args.rounds):
            for name, run in contenders.items():
                tick, cpu_tick = time.perf_counter(), time.process_time()
                found[name] = run()
                seconds[name].append(time.perf_counter() - tick)
                cpu[name].append(time.process_time() - cpu_tick)
        load_after = os.getloadavg()[0]

    print(f"load average (1 min) before/after: {load_before:.2f} / {load_after:.2f}")
    # CPU time (all threads of this process) per frame is steadier than wall time on a
    # shared machine: it does not count time spent waiting for other people's work.
    print(f"{'':32s} {'best fps':>9s} {'median fps':>11s} {'CPU ms/frame':>13s} {'F1':>6s}")
    best: dict[str, float] = {}
    for name in contenders:
        best[name] = frames / min(seconds[name])
        median = frames / statistics.median(seconds[name])
        cpu_ms = 1000 * statistics.median(cpu[name]) / frames
        print(
            f"{name:32s} {best[name]:9.0f} {median:11.0f} {cpu_ms:13.3f} "
            f"{f1(found[name], cuts):6.3f}"
        )
    for name in contenders:
        missed = sorted(set(cuts) - set(found[name]))
        extra = sorted(set(found[name]) - set(cuts))
        if missed or extra:
            print(f"{name}: missed cuts {missed}, extra cuts {extra}")
    reference = "pyscenedetect ContentDetector"
    for name in list(contenders)[1:]:
        wall = best[name] / best[reference]
        by_cpu = statistics.median(cpu[reference]) / statistics.median(cpu[name])
        print(f"{name}: {wall:.2f}x PySceneDetect's fps (best vs best), {by_cpu:.2f}x less CPU")


if __name__ == "__main__":
    main()
