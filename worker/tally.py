"""Hot-path counters and histograms as plain Python numbers, exported by a collector.

prometheus_client's `Counter.inc` and `Histogram.observe` take a lock and check their
arguments on every call (about 1 µs each). The worker's per-job figures are written by
one thread only (the fetch loop), so they can be plain dict and list updates (about
0.2 µs); a scrape, from the HTTP thread, copies them (a dict or list copy is atomic under
the GIL) and builds the families. A scrape may see a histogram's count one job ahead of
its sum, as with prometheus_client's own histograms; counters never go backwards.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString


class CounterTally:
    """A labelled counter: `inc(labels)` from one thread, `collect()` from any."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self.values: dict[tuple[str, ...], int] = {}

    def inc(self, labels: tuple[str, ...]) -> None:
        values = self.values
        values[labels] = values.get(labels, 0) + 1

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        fam = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in sorted(dict(self.values).items()):
            fam.add_metric(list(labels), value)
        yield fam


class HistogramTally:
    """A histogram with one label: `observe(label, value)` from one thread."""

    def __init__(
        self, name: str, documentation: str, labelname: str, buckets: Sequence[float]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelname = labelname
        self.bounds = [float(b) for b in buckets]
        if self.bounds[-1] != float("inf"):
            self.bounds.append(float("inf"))
        self.series: dict[str, list[float]] = {}
        """label value -> per-bucket counts (not cumulative), then the sum."""

    def observe(self, label: str, value: float) -> None:
        counts = self.series.get(label)
        if counts is None:
            counts = self.series[label] = [0.0] * (len(self.bounds) + 1)
        counts[bisect_left(self.bounds, value)] += 1
        counts[-1] += value

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=[self.labelname])]

    def collect(self) -> Iterator[Metric]:
        fam = HistogramMetricFamily(self.name, self.documentation, labels=[self.labelname])
        for label, counts in sorted(dict(self.series).items()):
            counts = list(counts)
            cumulative, buckets = 0.0, []
            for bound, n in zip(self.bounds, counts[:-1], strict=True):
                cumulative += n
                buckets.append((floatToGoString(bound), cumulative))
            fam.add_metric([label], buckets, counts[-1])
        yield fam
