"""Long fuzz run: hostile payloads through LPUSH into a real redis-server and a live worker.

Prints payloads tried, worker exits (must be 0) and problems, i.e. payloads unaccounted
for and invariants broken (must be 0). Invariants: `tests/fuzz/rig.py`.

    .venv/bin/python bench/fuzz.py [--batches 300] [--seed 1]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.fuzz.payloads import CORPUS, payloads
from tests.fuzz.rig import Rig
from worker.redis_server import RedisProcess


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cli-every", type=int, default=10, help="CLI readers every n-th batch")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="stoker-fuzz-"))
    server = RedisProcess(workdir / "redis", appendonly=False).start()
    rig = Rig(server.url, workdir, cli_every=args.cli_every)
    rig.start()
    tried, problems, started = 0, [], time.monotonic()

    def run(batch: list[bytes]) -> None:
        nonlocal tried
        tried += len(batch)
        found = rig.run_batch(batch)
        for problem in found[: max(0, 5 - len(problems))]:  # the first ones, as they come
            print(f"  problem: {problem[:300]}", flush=True)
        problems.extend(found)
        if not rig.alive():  # count it, then carry on with a fresh worker
            rig.start()
        if tried % 500 < len(batch):
            print(f"  {tried} payloads, {rig.exits} exits, {len(problems)} problems", flush=True)

    try:
        run(CORPUS)

        @seed(args.seed)
        @settings(
            max_examples=args.batches,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(batch=st.lists(payloads(), min_size=5, max_size=40))
        def fuzz(batch: list[bytes]) -> None:
            run(batch)

        fuzz()
    finally:
        rig.stop()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"payloads tried:        {tried}")
    print(f"worker exits:          {rig.exits}")
    print(f"problems (unaccounted jobs, broken invariants): {len(problems)}")
    for p in problems[:20]:
        print(f"  {p}")
    print(f"seconds:               {time.monotonic() - started:.0f}")
    return 0 if not problems and not rig.exits else 1


if __name__ == "__main__":
    raise SystemExit(main())
