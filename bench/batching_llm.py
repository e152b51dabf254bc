"""Jobs/s of `llm_analysis` run one job per call vs batched across jobs (local backend).

    python bench/batching_llm.py [--jobs 64] [--batch 16] [--repeat 3] [--max-new-tokens 64]
                                 [--sequences 32] [--threads 1]

64 short jobs (2 tasks each over its own ~200-token meeting transcript, read from a file
under a media root) on one loaded processor, two ways: one `process` call per job, and
`process_batch` calls of `--batch` jobs (each job `prepare`d first, as the worker does).
The modes alternate every `--batch` jobs, so a burst of someone else's load on this
shared machine hits both; prints each repeat, the medians and their ratio, the model's
load time, whether the two modes gave the same answers, and the load average.

`build_jobs(media_root)` writes the transcripts and returns the 64 job payloads
(`{"processor", "params"}`, as producers push them) for a worker-level benchmark.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import structlog  # noqa: E402
import torch  # noqa: E402

from config import LLMSettings, Settings  # noqa: E402
from processors.base import Context, Item  # noqa: E402
from processors.llm.processor import LLMAnalysisProcessor  # noqa: E402

TASKS = {
    "summary": "Summarize the meeting in one sentence.",
    "actions": "List the action items with their owners.",
}
PEOPLE = ["ALICE", "BOB", "CAROL", "DAVE", "ERIN", "FRANK"]
LINES = [
    "The backend is ready and QA signed off on the release candidate.",
    "We found two minor bugs last week; both are fixed and deployed to staging.",
    "I will send the final feature list to marketing by Wednesday.",
    "The payment provider changes their API next month, so we pin the current version.",
    "Customer support asked for a short guide on the new export feature.",
    "Then we ship on Friday, and we keep the old build ready for two days.",
    "I can email the beta customers on Thursday once the notes are approved.",
    "Who watches the dashboards over the weekend?",
    "The load test showed the search page is slow with more than ten filters.",
    "Let's move the design review to Tuesday afternoon.",
    "The invoice template still shows the old company address.",
    "I will open a ticket for the migration and estimate it by Monday.",
    "Sales wants a demo environment for the trade fair in May.",
    "The mobile app crashes on older phones when the camera is denied.",
    "We agreed to drop the dark mode from this release.",
    "Please update the onboarding checklist with the new VPN steps.",
]


def transcript(seed: int, words: int = 140) -> str:
    """A meeting of speaker lines, about `words` words (~200 SmolLM2 tokens)."""
    rng = random.Random(seed)
    lines, count = [], 0
    while count < words:
        line = f"{rng.choice(PEOPLE)}: {rng.choice(LINES)}"
        lines.append(line)
        count += len(line.split())
    return "\n".join(lines)


def build_jobs(
    media_root: Path, count: int = 64, max_new_tokens: int = 64, folder: str = "llm-bench"
) -> list[dict[str, Any]]:
    """Write `count` transcripts under `media_root/folder` and return their job payloads."""
    (media_root / folder).mkdir(parents=True, exist_ok=True)
    jobs = []
    for i in range(count):
        name = f"{folder}/meeting-{i:03d}.txt"
        (media_root / name).write_text(transcript(i), encoding="utf-8")
        params = {"transcript_path": name, "tasks": TASKS, "max_new_tokens": max_new_tokens}
        jobs.append({"processor": "llm_analysis", "params": params})
    return jobs


def context(processor: LLMAnalysisProcessor, index: int) -> Context:
    log = structlog.get_logger()
    return Context(job_id=f"bench-{index}", device="cpu", log=log, settings=processor.settings)


def run_single(processor: LLMAnalysisProcessor, jobs: list[dict[str, Any]]) -> list[Any]:
    return [
        processor.process(processor.Params(**job["params"]), context(processor, i))
        for i, job in enumerate(jobs)
    ]


def run_batched(processor: LLMAnalysisProcessor, jobs: list[dict[str, Any]], size: int) -> list:
    results: list[Any] = []
    for start in range(0, len(jobs), size):
        items = []
        for i, job in enumerate(jobs[start : start + size], start):
            params, ctx = processor.Params(**job["params"]), context(processor, i)
            items.append(Item(params, processor.prepare(params, ctx), ctx))
        results += processor.process_batch(items)
    return results


def timed(run: Any) -> tuple[float, list[Any]]:
    started = time.perf_counter()
    results = run()
    return time.perf_counter() - started, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="jobs per process_batch call")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--sequences", type=int, default=32, help="LLM_BATCH_SIZE")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "var" / "models")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    media = Path(tempfile.mkdtemp(prefix="stoker-llm-bench-"))
    jobs = build_jobs(media, args.jobs, args.max_new_tokens)
    llm = LLMSettings(cache_dir=args.cache_dir, temperature=0.0, batch_size=args.sequences)
    started = time.perf_counter()
    processor = LLMAnalysisProcessor(Settings(media_root=media, llm=llm))
    processor.load("cpu")
    processor.load_backend()
    print(f"load: {time.perf_counter() - started:.1f} s; torch threads {torch.get_num_threads()}")
    tokens = [
        processor.backend.count_tokens(media.joinpath(j["params"]["transcript_path"]).read_text())
        for j in jobs
    ]  # type: ignore[union-attr]
    print(
        f"{args.jobs} jobs x {len(TASKS)} tasks, transcripts {min(tokens)}-{max(tokens)} tokens, "
        f"max_new_tokens {args.max_new_tokens}, LLM_BATCH_SIZE {args.sequences}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    run_batched(processor, jobs[:2], 2)  # warm-up
    single_rates, batched_rates, same = [], [], True
    for repeat in range(args.repeat):
        single_s = batched_s = 0.0
        # Alternate the modes every `--batch` jobs, so that a burst of someone else's load
        # on this shared machine lands on both alike.
        for start in range(0, args.jobs, args.batch):
            part = jobs[start : start + args.batch]
            seconds, singles = timed(lambda part=part: run_single(processor, part))
            single_s += seconds
            seconds, batched = timed(lambda part=part: run_batched(processor, part, args.batch))
            batched_s += seconds
            same = same and [r["results"] for r in singles] == [r["results"] for r in batched]
        single_rates.append(args.jobs / single_s)
        batched_rates.append(args.jobs / batched_s)
        print(
            f"repeat {repeat + 1}: single {single_rates[-1]:.3f} jobs/s, "
            f"batched ({args.batch}) {batched_rates[-1]:.3f} jobs/s, "
            f"ratio {batched_rates[-1] / single_rates[-1]:.2f}x, "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    single, batched_rate = statistics.median(single_rates), statistics.median(batched_rates)
    print(
        f"median of {args.repeat}: single {single:.3f} jobs/s, batched {batched_rate:.3f} jobs/s, "
        f"ratio {batched_rate / single:.2f}x; same answers: {same}"
    )


if __name__ == "__main__":
    main()
