"""Generated tokens/s of the `llm_analysis` processor on the local backend (CPU here).

    python bench/llm.py [--tasks 8] [--max-new-tokens 64] [--threads 1] [--repeat 2]
                        [--copies 4] [--convert]

The transcript is `--copies` copies of a sample meeting (4 copies: about 1,000 tokens, a
short meeting; real ones run to several thousand). The same tasks run two ways: all in
one job (one batched `generate`, the shared transcript prefix computed once), and one
task per job (one by one). Prints generated tokens/s for each (completion tokens / wall
time of the jobs, prompt processing included) and the ratio; also the model's load time
(from the safetensors cache; with `--convert`, a first load into a fresh cache, which
de-quantizes the GGUF) and the machine's load average, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
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
from processors.base import Context  # noqa: E402
from processors.llm.processor import LLMAnalysisProcessor  # noqa: E402

TRANSCRIPT = """ALICE: Good morning everyone. We review the launch plan for version 2 of the app.
BOB: The backend is ready. QA found two minor bugs last week and both are fixed.
CAROL: The release notes are half done. I need the final list of features from Bob.
BOB: I will send it to you by Wednesday.
ALICE: Good. Marketing wants to email beta customers before the launch.
CAROL: I can do that on Thursday, once the notes are approved.
DAVE: One risk: the payment provider changes their API next month.
ALICE: Then we pin the current API version and plan the migration for the next sprint.
DAVE: Agreed. I will open a ticket for the migration.
BOB: Do we have a rollback plan if the launch goes badly?
ALICE: Yes, we keep the old build ready for 48 hours. So the decision is: we ship on Friday.
CAROL: Who watches the dashboards over the weekend?
BOB: I will, and Dave covers Sunday.
ALICE: Great. Thanks everyone, see you Friday."""

TASKS = {
    "summary": "Provide a brief summary",
    "decisions": "List key decisions",
    "actions": "List the action items with their owners",
    "participants": "List the participants",
    "risks": "List the risks that were raised",
    "dates": "List the dates and deadlines mentioned",
    "questions": "List the questions that were asked",
    "sentiment": "Describe the overall mood of the meeting",
}


def timed_load(settings: Settings) -> tuple[LLMAnalysisProcessor, float]:
    started = time.perf_counter()
    processor = LLMAnalysisProcessor(settings)
    processor.load("cpu")
    return processor, time.perf_counter() - started


def run_job(
    processor: LLMAnalysisProcessor, transcript: str, tasks: dict[str, str]
) -> tuple[int, float]:
    """(completion tokens, wall seconds) of one job."""
    params = processor.Params(transcript=transcript, tasks=tasks)
    ctx = Context(
        job_id="bench", device="cpu", log=structlog.get_logger(), settings=processor.settings
    )
    started = time.perf_counter()
    result: dict[str, Any] = processor.process(params, ctx)
    return result["metadata"]["usage"]["completion_tokens"], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8, help="tasks in the job (at most 8)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "var" / "models")
    parser.add_argument("--convert", action="store_true", help="also time a GGUF conversion")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each mode (best is kept)")
    parser.add_argument(
        "--copies", type=int, default=4, help="transcript = this many copies of the sample meeting"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    tasks = dict(list(TASKS.items())[: args.tasks])

    def settings(cache_dir: Path) -> Settings:
        llm = LLMSettings(cache_dir=cache_dir, max_new_tokens=args.max_new_tokens, temperature=0.0)
        return Settings(llm=llm)

    print(f"torch threads: {torch.get_num_threads()}, load average before: {os.getloadavg()}")
    if args.convert:
        with tempfile.TemporaryDirectory() as fresh:
            processor, seconds = timed_load(settings(Path(fresh)))
            print(f"first load (GGUF de-quantized, saved as safetensors): {seconds:.1f} s")
            del processor
    processor, seconds = timed_load(settings(args.cache_dir))
    source = processor.backend.loaded_from  # type: ignore[union-attr]
    print(f"load ({source}): {seconds:.1f} s")
    processor, seconds = timed_load(settings(args.cache_dir))
    print(f"load again (cache): {seconds:.1f} s")

    transcript = "\n".join([TRANSCRIPT] * args.copies)
    tokens = processor.backend.count_tokens(transcript)  # type: ignore[union-attr]
    print(f"transcript: {tokens} tokens ({args.copies} copies of the sample meeting)")
    run_job(processor, transcript, {"warmup": "Say hello"})
    # The machine is shared: alternate the two modes and keep each one's best run, so a
    # burst of someone else's load does not land on one mode only.
    batched_runs: list[tuple[int, float]] = []
    sequential_runs: list[tuple[int, float]] = []
    for _ in range(args.repeat):
        batched_runs.append(run_job(processor, transcript, tasks))
        tokens, seconds = 0, 0.0
        for name, prompt in tasks.items():
            job_tokens, job_seconds = run_job(processor, transcript, {name: prompt})
            tokens, seconds = tokens + job_tokens, seconds + job_seconds
        sequential_runs.append((tokens, seconds))
    rates = []
    for label, runs in (
        ("batched (one generate)", batched_runs),
        ("sequential (one by one)", sequential_runs),
    ):
        tokens, seconds = min(runs, key=lambda run: run[1])
        rates.append(tokens / seconds)
        every = ", ".join(f"{t / s:.1f}" for t, s in runs)
        print(
            f"{label:24} {len(tasks)} tasks: {tokens} tokens in {seconds:.2f} s = "
            f"{tokens / seconds:.1f} tokens/s (best of {len(runs)}; all: {every})"
        )
    print(
        f"ratio (best vs best): {rates[0] / rates[1]:.2f}x   load average after: {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
