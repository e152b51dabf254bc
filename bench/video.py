"""Benchmark: `scene_cuts` against PySceneDetect's ContentDetector on a varied clip set.

Generates `--clips` clips (default 24, fixed seeds; `bench/video_clips.py`): shots of flat
colours, test patterns, bars, fractals, cellular automata and film grain from lavfi
sources, some panned like a moving camera, joined by hard cuts (the truth) and by
cross-fades that must not count as cuts. Both detectors run with their defaults
(threshold 27, min scene length 15 frames) on every clip; it prints F1 (a cut found
within `--tolerance` frames counts) on the development clips (every third seed), the
held-out ones and all of them, and frames/s and CPU ms/frame over the whole set.

    .venv/bin/python bench/video.py [--clips 24] [--rounds 2] [--threads 1]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from video_clips import Clip, f1, make_clip, match, split

Detector = Callable[[Path], list[int]]


def pyscenedetect(path: Path) -> list[int]:
    from scenedetect import ContentDetector, detect

    return [start.frame_num for start, _ in detect(str(path), ContentDetector())[1:]]


def stoker(folder: Path, width: int | None) -> Detector:
    """Our processor with the `scene_cuts` stage alone, loaded once."""
    import structlog

    from config import Settings
    from processors.base import Context
    from processors.video.processor import VideoPipelineProcessor

    settings = Settings(media_root=folder, output_dir=folder / "out", data_dir=folder)
    processor = VideoPipelineProcessor(settings)
    processor.load("cpu")

    def run(path: Path) -> list[int]:
        ctx = Context(job_id="bench", device="cpu", log=structlog.get_logger(), settings=settings)
        params = processor.Params(video_path=path.name, stages=["scene_cuts"], resize=width)
        result: dict[str, Any] = processor.process(params, ctx)
        return [scene["start_frame"] for scene in result["scenes"][1:]]

    return run


def score(found: dict[int, list[int]], clips: list[Clip], seeds: list[int], tol: int) -> str:
    tp = fp = fn = 0
    for clip in clips:
        if clip.seed in seeds:
            a, b, c = match(found[clip.seed], clip.cuts, tol)
            tp, fp, fn = tp + a, fp + b, fn + c
    return f"{f1(tp, fp, fn):.3f} ({tp} hit, {fp} false, {fn} missed)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2, help="timed passes over the set")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--tolerance", type=int, default=1, help="frames a cut may be off by")
    parser.add_argument("--analysis-width", type=int, help="ours (default VIDEO_ANALYSIS_WIDTH)")
    parser.add_argument("--verbose", action="store_true", help="every clip's misses")
    args = parser.parse_args()

    import structlog
    import torch

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    torch.set_num_threads(args.threads)
    seeds = list(range(args.clips))
    dev, held = split(seeds)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = [make_clip(folder / f"clip{s:02d}.mp4", s) for s in seeds]
        frames = sum(c.frames for c in clips)
        print(
            f"{len(clips)} clips, {frames} frames (320x180, 30 fps), "
            f"{sum(len(c.cuts) for c in clips)} hard cuts, "
            f"{sum(len(c.fades) for c in clips)} cross-fades; "
            f"{os.cpu_count()} CPUs, torch threads {args.threads}"
        )
        contenders: dict[str, Detector] = {
            "PySceneDetect ContentDetector": pyscenedetect,
            "stoker scene_cuts": stoker(folder, args.analysis_width),
        }
        found: dict[str, dict[int, list[int]]] = {name: {} for name in contenders}
        wall: dict[str, list[float]] = {name: [] for name in contenders}
        cpu: dict[str, list[float]] = {name: [] for name in contenders}
        for run in contenders.values():
            run(folder / "clip00.mp4")  # warm-up: imports, first allocations
        load_before = os.getloadavg()[0]
        for _ in range(args.rounds):
            for name, run in contenders.items():
                tick, cpu_tick = time.perf_counter(), time.process_time()
                for clip in clips:
                    found[name][clip.seed] = run(folder / f"clip{clip.seed:02d}.mp4")
                wall[name].append(time.perf_counter() - tick)
                cpu[name].append(time.process_time() - cpu_tick)
        load_after = os.getloadavg()[0]

    print(f"load average (1 min) before/after: {load_before:.2f} / {load_after:.2f}")
    print(f"F1 with a tolerance of {args.tolerance} frame(s):")
    for name in contenders:
        print(f"  {name}")
        for label, part in (("development", dev), ("held out", held), ("all", seeds)):
            print(f"    {label:12} {score(found[name], clips, part, args.tolerance)}")
    print(f"{'':32s} {'best fps':>9s} {'median fps':>11s} {'CPU ms/frame':>13s}")
    for name in contenders:
        best, median = frames / min(wall[name]), frames / statistics.median(wall[name])
        cpu_ms = 1000 * statistics.median(cpu[name]) / frames
        print(f"{name:32s} {best:9.0f} {median:11.0f} {cpu_ms:13.3f}")
    if args.verbose:
        for clip in clips:
            for name in contenders:
                got = found[name][clip.seed]
                missed = [c for c in clip.cuts if all(abs(c - g) > args.tolerance for g in got)]
                extra = [g for g in got if all(abs(c - g) > args.tolerance for c in clip.cuts)]
                if missed or extra:
                    print(f"clip {clip.seed} {clip.kinds} {name}: missed {missed} extra {extra}")


if __name__ == "__main__":
    main()
