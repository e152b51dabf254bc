"""Every figure of the batching issue, in one run (median of 3 each).

    python bench/batching.py [--skip-llm] [--skip-audio] [--jobs 20000] [--repeat 3]

1. 64 short `llm_analysis` jobs (2 tasks each, ~200-token transcripts): jobs/s with
   `batch_size=16` against 1 (`bench/batching_llm.py`).
2. 32 diarization jobs of 10-second clips: batched + inputs prepared ahead against
   today's one-at-a-time path, with the device-idle time between jobs
   (`bench/batching_audio.py`).
3. A drain of `--jobs` echo jobs pushed README-style (`LPUSH` of `{"processor": ...,
   "params": ...}`: no id, no queued_at), one worker, SQLite status writes; batching on
   (echo batches 32) and off; then an idle worker's enqueue-to-start latency p50/p99 with
   one queue and with three (`high,default,low`).

The machine's load is printed with each part: this is a shared 2-core VM, so compare
figures within one run. Peers are compared in `../shared/peers/` (one run, same Redis).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from throughput import drain, latency  # noqa: E402

from worker.redis_server import RedisProcess  # noqa: E402


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def sub_bench(script: str) -> None:
    """Run one of the processor benches and pass its output through."""
    print(f"\n== {script} ({load()})", flush=True)
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script)], cwd=ROOT, check=False)
    if done.returncode:
        print(f"{script} exited {done.returncode}")


def median_rate(redis_url: str, jobs: int, repeat: int, **extra: str) -> str:
    rates = sorted(drain(redis_url, 1, jobs, **extra) for _ in range(repeat))
    return f"{statistics.median(rates):,.0f} jobs/s (runs: {', '.join(f'{r:,.0f}' for r in rates)})"


def queue_figures(jobs: int, repeat: int, samples: int) -> None:
    print(f"\n== drain and latency, README-style payloads ({load()})", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisProcess(Path(tmp), appendonly=True).start()
        try:
            print(f"drain of {jobs:,} echo jobs, 1 worker, SQLite:")
            print(f"  batching on (32):  {median_rate(server.url, jobs, repeat)}", flush=True)
            off = median_rate(server.url, jobs, repeat, WORKER_BATCH_SIZES="echo=1")
            print(f"  batching off:      {off}", flush=True)
            for queues in ("default", "high,default,low"):
                runs = [latency(server.url, queues, samples) for _ in range(repeat)]
                p50 = statistics.median(r[0] for r in runs)
                p99 = statistics.median(r[1] for r in runs)
                print(
                    f"  idle worker, queues={queues}: enqueue-to-start p50 {p50:.2f} ms, "
                    f"p99 {p99:.2f} ms (median of {repeat} runs of {samples} jobs)",
                    flush=True,
                )
        finally:
            server.stop()
    print(f"({load()})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-llm", action="store_true")
    ap.add_argument("--skip-audio", action="store_true")
    ap.add_argument("--skip-queue", action="store_true")
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--latency-jobs", type=int, default=300)
    args = ap.parse_args()
    if not args.skip_llm:
        sub_bench("batching_llm.py")
    if not args.skip_audio:
        sub_bench("batching_audio.py")
    if not args.skip_queue:
        queue_figures(args.jobs, args.repeat, args.latency_jobs)


if __name__ == "__main__":
    main()
