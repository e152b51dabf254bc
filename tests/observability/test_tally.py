"""The hot-path tallies export what prometheus_client's own metrics would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker.tally import CounterTally, HistogramTally

BOUNDS = (0.1, 1.0, 10.0)


def samples(registry: CollectorRegistry, suffix: str) -> dict[tuple, float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name.endswith(suffix)
    }


@pytest.mark.parametrize(
    "values",
    [[], [0.05], [0.1], [0.1000001], [1.0, 10.0, 10.5], [0.0, 0.2, 3, 3, 99, 1e9]],
)
def test_a_histogram_tally_matches_prometheus_clients_histogram(values: list[float]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    tally = HistogramTally("h_seconds", "doc", "queue", BOUNDS)
    ours.register(tally)
    reference = Histogram("h_seconds", "doc", ["queue"], buckets=BOUNDS, registry=theirs)
    for v in values:
        tally.observe("q", v)
        reference.labels("q").observe(v)
    if not values:
        reference.labels("q")
        tally.series["q"] = [0.0] * (len(BOUNDS) + 2)
    for suffix in ("_bucket", "_count", "_sum"):
        assert samples(ours, suffix) == samples(theirs, suffix)


def test_a_counter_tally_counts_per_label_set() -> None:
    registry = CollectorRegistry()
    tally = CounterTally("c", "doc", ["queue", "outcome"])
    registry.register(tally)
    for labels in [("a", "ok"), ("a", "ok"), ("b", "failed")]:
        tally.inc(labels)
    assert samples(registry, "_total") == {
        ("c_total", (("outcome", "ok"), ("queue", "a"))): 2.0,
        ("c_total", (("outcome", "failed"), ("queue", "b"))): 1.0,
    }
