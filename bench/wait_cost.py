"""What `WAIT 1` (one replica acknowledged) adds to each Redis write of a job's life.

    python bench/wait_cost.py [--ops 2000]

Starts a master and one replica on loopback (tests/ledger/sentinel_cluster.py), then times
one job's moves — fetch (LMOVE queue -> in-flight), acknowledge (LREM) — with and without a
`WAIT 1 1000` after each, on one connection, as the broker would send them. Prints
microseconds per job and jobs/s for one client. (The worker does not send WAIT:
`WORKER_REDIS_MIN_REPLICAS` is not built; this is the cost it would have.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from tests.ledger.sentinel_cluster import SentinelCluster  # noqa: E402


def run(client: redis.Redis, ops: int, wait: bool) -> float:
    client.delete("q", "inflight")
    client.lpush("q", *(f'{{"id": "j{i}", "processor": "echo"}}' for i in range(ops)))
    started = time.perf_counter()
    for _ in range(ops):
        raw = client.lmove("q", "inflight", "RIGHT", "LEFT")
        if wait:
            client.wait(1, 1000)
        client.lrem("inflight", -1, raw)
        if wait:
            client.wait(1, 1000)
    return (time.perf_counter() - started) / ops * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=2000)
    args = ap.parse_args()
    cluster = SentinelCluster(Path(tempfile.mkdtemp(prefix="stoker-wait-"))).start()
    try:
        client = redis.Redis(port=cluster.ports[0])
        for wait in (False, True, False, True):
            us = run(client, args.ops, wait)
            label = "WAIT 1 after each write" if wait else "no WAIT"
            print(
                f"{label:24} {us:8.1f} us/job  {1e6 / us:8.0f} jobs/s"
                f"  load {os.getloadavg()[0]:.1f}"
            )
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
