"""Diarization jobs batched across jobs with inputs prepared ahead, vs one at a time.

32 diarization jobs of 10-second clips (cut by sox from generated corpus conversations,
seeds 3000 and up, in their own formats: wav, mp3, ogg), run at processor level:

- today's path: per job, `prepare` (decode, VAD) then `process` (embed, cluster, write);
- batched + prepared: jobs in batches of `--batch-size`; while `process_batch` runs one
  batch (all its embedding windows in one stream of model batches, then each job's
  clustering), the next batch's `prepare` runs on a thread, as the executor does.

Prints jobs/s of each (median of `--repeat` runs), their ratio (issue 14: >= 1.5x), CPU
seconds per job, the share of the time the embedding model (the device's work) sat idle,
and checks that both paths gave every job the same speakers and turns.

    .venv/bin/python bench/batching_audio.py [--jobs 32] [--batch-size 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLIP_SECONDS = 10.0


def clips(workdir: Path, count: int) -> list[str]:
    """`count` clips of CLIP_SECONDS under workdir/media (cached), as media-relative names."""
    from tests.audio.corpus import conversation

    media = workdir / "media"
    media.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    seed = 3000
    while len(names) < count:
        conv = conversation(seed, workdir / "corpus")
        seed += 1
        if conv.path.suffix == ".m4a":  # sox cannot cut AAC
            continue
        start = 0.0
        while start + CLIP_SECONDS <= conv.duration and len(names) < count:
            target = media / f"{conv.path.stem}-{start:03.0f}{conv.path.suffix}"
            if not target.exists():
                subprocess.run(
                    ["sox", str(conv.path), str(target), "trim", str(start), str(CLIP_SECONDS)],
                    check=True,
                    capture_output=True,
                )
            names.append(target.name)
            start += CLIP_SECONDS
    return names


class TimedEmbedder:
    """The processor's own embedder, with the seconds spent in it counted: the device's
    busy time (the rest of a run, the device waits)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.dimension, self.busy = inner, inner.dimension, 0.0

    def embed(self, windows: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.embed(windows)
        finally:
            self.busy += time.perf_counter() - started


def context(settings: Any, device: str, job_id: str) -> Any:
    import structlog

    from processors.base import Context

    return Context(job_id=job_id, device=device, log=structlog.get_logger(), settings=settings)


def one_at_a_time(processor: Any, names: list[str], device: str) -> list[dict[str, Any]]:
    """Today's path: prepare, then process, job after job."""
    results = []
    for n, name in enumerate(names):
        ctx = context(processor.settings, device, f"single-{n}")
        params = processor.Params(audio_path=name)
        results.append(processor.process(processor.prepare(params, ctx), ctx))
    return results


def batched(processor: Any, names: list[str], device: str, batch_size: int) -> list[dict[str, Any]]:
    """Batches through `process_batch`, the next batch prepared on a thread meanwhile."""
    from processors.base import Item

    def prepare(first: int) -> list[Item]:
        out = []
        for n, name in enumerate(names[first : first + batch_size], start=first):
            ctx = context(processor.settings, device, f"batch-{n}")
            params = processor.Params(audio_path=name)
            out.append(Item(params, processor.prepare(params, ctx), ctx))
        return out

    results: list[dict[str, Any]] = []
    with ThreadPoolExecutor(1, thread_name_prefix="prepare") as pool:
        ahead: Future[list[Item]] = pool.submit(prepare, 0)
        for first in range(0, len(names), batch_size):
            items = ahead.result()
            if first + batch_size < len(names):
                ahead = pool.submit(prepare, first + batch_size)
            for result in processor.process_batch(items):
                if isinstance(result, Exception):
                    raise result
                results.append(result)
    return results


def timed(run: Any, embedder: TimedEmbedder) -> tuple[float, float, float, list[Any]]:
    """Wall seconds, process CPU seconds (all threads), the share of the wall time the
    embedding model was idle, and the results of `run()`."""
    started, cpu, busy = time.perf_counter(), time.process_time(), embedder.busy
    results = run()
    wall = time.perf_counter() - started
    return wall, time.process_time() - cpu, 1 - (embedder.busy - busy) / wall, results


def same_outcomes(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    return [(r["num_speakers"], r["segments"]) for r in a] == [
        (r["num_speakers"], r["segments"]) for r in b
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/stoker-bench-batching-audio"))
    args = p.parse_args(argv)

    import torch

    from bench.audio_corpus import structlog_quiet
    from config import Settings
    from processors.audio.diarization import DiarizationProcessor
    from processors.base import resolve_device

    structlog_quiet()
    torch.set_num_threads(args.torch_threads)
    names = clips(args.workdir, args.jobs)
    settings = Settings(media_root=args.workdir / "media", output_dir=args.workdir / "output")
    device = resolve_device(args.device)
    processor = DiarizationProcessor(settings)
    processor.load(device)
    processor.embedder = embedder = TimedEmbedder(processor.embedder)
    one_at_a_time(processor, names[:2], device)  # warm-up
    load_before = os.getloadavg()[0]
    paths = {
        "one at a time (prepare + process)": lambda: one_at_a_time(processor, names, device),
        f"batched ({args.batch_size}) + prepared ahead": lambda: batched(
            processor, names, device, args.batch_size
        ),
    }
    runs: dict[str, list[tuple[float, float, float, list[Any]]]] = {k: [] for k in paths}
    for _ in range(args.repeat):
        for label, run in paths.items():
            runs[label].append(timed(run, embedder))
    print(
        f"{len(names)} diarization jobs of {CLIP_SECONDS:.0f} s on {device} "
        f"(torch threads {args.torch_threads}), median of {args.repeat}"
    )
    rates = {}
    for label, measured in runs.items():
        per_s = [len(names) / wall for wall, _, _, _ in measured]
        rates[label] = statistics.median(per_s)
        cpu = statistics.median(c / len(names) for _, c, _, _ in measured)
        idle = statistics.median(i for _, _, i, _ in measured)
        print(
            f"{label:<36} {rates[label]:6.2f} jobs/s {_runs(per_s)}; CPU {cpu:.3f} s/job; "
            f"embedding model idle {idle:.0%} of the time"
        )
    single, batch = rates.values()
    print(f"ratio {batch / single:.2f}x (target >= 1.5x)")
    results = [measured[-1][3] for measured in runs.values()]
    print(f"same speakers and turns on both paths: {same_outcomes(*results)}")
    print(
        f"load average (1 min) before/after {load_before:.2f}/{os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} cores"
    )
    return 0


def _runs(values: list[float]) -> str:
    return "(runs: " + ", ".join(f"{v:.2f}" for v in values) + ")"


if __name__ == "__main__":
    sys.exit(main())
