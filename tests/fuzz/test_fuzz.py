"""Fuzzing the real path: raw bytes through LPUSH into a real redis-server, a live worker,
the CLI reading what it left (invariants in `tests/fuzz/rig.py`). A bounded run here; the
long run is `bench/fuzz.py`. `STOKER_FUZZ_EXAMPLES` sets the number of batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.payloads import CORPUS, payloads
from tests.fuzz.rig import Rig, env_int

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def rig(redis_server: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    import redis

    url = redis_server.url  # type: ignore[attr-defined]
    redis.Redis.from_url(url).flushall()
    rig = Rig(url, Path(tmp_path_factory.mktemp("fuzz")))
    rig.start()
    yield rig
    rig.stop()


def test_every_payload_of_the_corpus_ends_in_exactly_one_place(rig: Rig) -> None:
    assert rig.run_batch(CORPUS, timeout=120) == []


@settings(
    max_examples=env_int("STOKER_FUZZ_EXAMPLES", 6),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(batch=st.lists(payloads(), min_size=5, max_size=30))
def test_random_payloads_never_stop_the_worker_nor_go_missing(rig: Rig, batch: list[bytes]) -> None:
    assert rig.run_batch(batch) == []
