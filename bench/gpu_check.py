"""The CUDA paths, checked and timed in one run (`bench/gpu_check.sh`).

1. Each built-in processor on the device: model load time, then 8 jobs one at a time
   and the same 8 as one batch (`JobRunner.run_batch`, the executor's own code), jobs/s,
   the speed-up, and torch's peak memory.
2. A deliberate CUDA out-of-memory error through a real worker and Redis: the first
   attempt asks for 1.5x the device's memory; the worker frees the cache and the retry
   succeeds (attempt outcomes printed).
3. With two or more devices: two workers pinned to cuda:0 and cuda:1 each run jobs and
   report their own device.

`--device cpu` runs the same script without a GPU (parts 2 and 3 need CUDA and are
skipped), so it can be checked anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from worker.callbacks import NoCallbacks  # noqa: E402
from worker.demo_jobs import FALLBACK_TRANSCRIPT, LLM_TASKS  # noqa: E402
from worker.execution import JobRunner, Task  # noqa: E402

JOBS = 8


def make_inputs(media: Path) -> dict[str, dict[str, Any]]:
    """One job's params per processor (their files made under `media`)."""
    from worker import demo_media

    (media / "gpu").mkdir(parents=True, exist_ok=True)
    demo_media.make_conversation(media / "gpu" / "conversation.wav")
    demo_media.make_clip(media / "gpu" / "clip.mp4")
    audio = "gpu/conversation.wav"
    return {
        "echo": {"text": "x"},
        "diarization": {"audio_path": audio, "num_speakers": 3},
        "transcription": {"audio_path": audio},
        "video_pipeline": {"video_path": "gpu/clip.mp4"},
        "llm_analysis": {
            "transcript": FALLBACK_TRANSCRIPT,
            "tasks": LLM_TASKS,
            "max_new_tokens": 32,
        },
    }


def peak_memory_mib(device: str) -> str:
    if not device.startswith("cuda"):
        return "-"
    import torch

    return f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f} MiB"


def processor_figures(device: str, data_dir: Path) -> None:
    from worker.logs import configure_logging

    settings = Settings(device=device, data_dir=data_dir, log_level="WARNING")
    configure_logging(settings)
    inputs = make_inputs(settings.media_root)  # type: ignore[arg-type]
    runner = JobRunner(settings)
    print(f"device {runner.device}; {JOBS} jobs per processor")
    for name, params in inputs.items():
        began = time.perf_counter()
        try:
            runner.processor(name)
        except Exception as exc:
            print(f"  {name:15s} unavailable: {exc}")
            continue
        loaded = time.perf_counter() - began
        tasks = [Task(f"{name}-{i}", name, params, 1) for i in range(JOBS)]
        began = time.perf_counter()
        singles = [runner.run(task, NoCallbacks()) for task in tasks]
        single_s = time.perf_counter() - began
        began = time.perf_counter()
        batch = runner.run_batch(tasks, NoCallbacks())
        batch_s = time.perf_counter() - began
        ok_single = sum(o.succeeded for o in singles)
        ok_batch = sum(o.succeeded for o in batch) if isinstance(batch, list) else 0
        errors = {o.message for o in [*singles, *(batch if isinstance(batch, list) else [batch])]}
        errors.discard(None)
        print(
            f"  {name:15s} load {loaded:5.1f} s | single {JOBS / single_s:7.2f} jobs/s "
            f"({ok_single}/{JOBS} ok) | batched {JOBS / batch_s:7.2f} jobs/s ({ok_batch}/{JOBS} ok)"
            f" | x{single_s / batch_s:.2f} | peak {peak_memory_mib(runner.device)}"
        )
        for error in sorted(errors)[:2]:
            print(f"    error: {str(error)[:200]}")
    runner.close()


def worker_env(redis_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")}
    env.update(
        REDIS_URL=redis_url,
        DATABASE_URL=f"sqlite:///{data_dir / 'gpu.db'}",
        WORKER_DATA_DIR=str(data_dir),
        WORKER_LOG_LEVEL="WARNING",
        WORKER_RETRY_BASE="0.2",
        WORKER_RETRY_JITTER="0",
        WORKER_PROCESSORS="bench.gpu_oom:OomOnce",
        **extra,
    )
    return env


def wait_rows(data_dir: Path, ids: list[str], timeout: float = 180) -> dict[str, Any]:
    from worker.store import JobStore

    store = JobStore(f"sqlite:///{data_dir / 'gpu.db'}")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                rows = {i: store.get(i) for i in ids}
            except Exception:
                store.reset()
                rows = {}
            if rows and all(r and r["status"] in ("succeeded", "failed") for r in rows.values()):
                return {i: (r, store.attempts(i)) for i, r in rows.items()}
            time.sleep(0.5)
    finally:
        store.close()
    raise SystemExit(f"jobs {ids} did not finish within {timeout:.0f} s")


def oom_check(redis_url: str, data_dir: Path) -> None:
    import redis

    env = worker_env(redis_url, data_dir, WORKER_DEVICE="cuda:0", WORKER_ID="gpu-oom")
    proc = subprocess.Popen([sys.executable, "-m", "worker", "run"], env=env, cwd=ROOT)
    try:
        client = redis.Redis.from_url(redis_url)
        job = {"id": "oom-once", "processor": "gpu_oom_once", "params": {"megabytes": 64}}
        client.lpush("stoker:queue:default", json.dumps(job))
        row, attempts = wait_rows(data_dir, ["oom-once"])["oom-once"]
    finally:
        proc.terminate()
        proc.wait(60)
    outcomes = [(a["outcome"], (a.get("error") or "")[:80]) for a in attempts]
    print(f"  out-of-memory job: {row['status']}; attempts {outcomes}; result {row['result']}")


def two_devices(redis_url: str, data_dir: Path) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    procs = []
    for n in (0, 1):
        env = worker_env(redis_url, data_dir, WORKER_DEVICE=f"cuda:{n}", WORKER_ID=f"gpu-{n}")
        procs.append(subprocess.Popen([sys.executable, "-m", "worker", "run"], env=env, cwd=ROOT))
    ids = [f"pin-{i}" for i in range(8)]
    try:
        for job_id in ids:
            job = {"id": job_id, "processor": "gpu_oom_once", "attempts": 1, "params": {}}
            client.lpush("stoker:queue:default", json.dumps(job))
        rows = wait_rows(data_dir, ids)
        devices = {n: client.hget(f"stoker:worker:gpu-{n}", "device") for n in (0, 1)}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    by_worker: dict[str, int] = {}
    for row, _ in rows.values():
        by_worker[row["worker_id"]] = by_worker.get(row["worker_id"], 0) + 1
    print(f"  two workers: devices {devices}; jobs per worker {by_worker}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda:0")
    args = ap.parse_args()
    started = time.monotonic()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: nothing to check (try --device cpu for a dry run)")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count:
        names = [torch.cuda.get_device_name(i) for i in range(count)]
        print(f"CUDA {torch.version.cuda}, torch {torch.__version__}, devices {names}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        print("\n1. processors, single and batched")
        processor_figures(args.device, data_dir)
        if args.device.startswith("cuda"):
            from worker.redis_server import RedisProcess

            server = RedisProcess(data_dir / "redis", appendonly=False).start()
            try:
                print("\n2. CUDA out of memory, retried")
                oom_check(server.url, data_dir)
                if count >= 2:
                    print("\n3. two workers, two devices")
                    two_devices(server.url, data_dir)
                else:
                    print("\n3. two workers, two devices: skipped (one device)")
            finally:
                server.stop()
    print(f"\ngpu_check done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
