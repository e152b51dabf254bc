"""GPU figures for the worker's metrics: torch memory from the executor, NVML from the host.

torch's allocator counters are per process, and only the executor child allocates: the
child puts them (with its model loads) in a small report sent over its pipe
(`child_report`), at most once a second. Utilization and temperature come from NVML
(`nvidia-ml-py`, the `gpu` extra) in the supervisor at scrape time; NVML never creates a
CUDA context. Without a GPU, torch or NVML the metrics are simply not exported.

Every GPU metric has a `gpu` label: the device as the host names it (the entry of
`CUDA_VISIBLE_DEVICES`, e.g. `3` for `worker@3`, or all indexes when it is unset), so
metrics of several workers on one machine never collide.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

_REPORT_EVERY = 1.0
_last_gpu_report = 0.0


def parse_visible(value: str | None) -> list[str] | None:
    """The entries of `CUDA_VISIBLE_DEVICES` (None: unset, every device is visible).

    CUDA stops at the first invalid entry; so does this.
    """
    if value is None:
        return None
    out = []
    for part in value.split(","):
        entry = part.strip()
        if not (entry.isdigit() or entry.startswith(("GPU-", "MIG-"))):
            break
        out.append(entry)
    return out


def gpu_label(index: int, visible: list[str] | None) -> str:
    """The host's name of the process's CUDA device `index`."""
    if visible is not None and index < len(visible):
        return visible[index]
    return str(index)


def torch_memory() -> dict[int, tuple[float, float, float]]:
    """Per CUDA device this process uses: (allocated, reserved, total) bytes; {} without."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    out = {}
    for i in range(torch.cuda.device_count()):
        try:
            _, total = torch.cuda.mem_get_info(i)
            out[i] = (
                float(torch.cuda.memory_allocated(i)),
                float(torch.cuda.memory_reserved(i)),
                float(total),
            )
        except RuntimeError:
            continue
    return out


def child_report(runner: Any) -> dict[str, Any]:
    """What the executor child tells the supervisor after a job: model loads (name,
    seconds) since the last report and, at most once a second, torch's GPU memory."""
    global _last_gpu_report
    report: dict[str, Any] = {}
    loads = getattr(runner, "loads", None)
    if loads:
        report["loads"] = list(loads)
        loads.clear()
    now = time.monotonic()
    if now - _last_gpu_report >= _REPORT_EVERY:
        _last_gpu_report = now
        memory = torch_memory()
        if memory:
            report["gpu"] = {str(i): v for i, v in memory.items()}
    return report


class GpuCollector:
    """`stoker_gpu_*` metrics: torch memory from the latest child report, NVML live."""

    def __init__(self, visible: str | None = None) -> None:
        self.visible = parse_visible(visible)
        self.memory: dict[str, tuple[float, float, float]] = {}
        self._nvml: list[tuple[str, Any]] | None = None
        self._lock = threading.Lock()

    def update(self, gpu: dict[str, Any]) -> None:
        """Torch memory per CUDA index (as strings) from a child report."""
        self.memory = {gpu_label(int(i), self.visible): tuple(v) for i, v in gpu.items()}

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        if self.memory:
            names = (
                ("allocated", "Bytes torch has allocated on the GPU (executor)"),
                ("reserved", "Bytes torch's caching allocator holds on the GPU (executor)"),
                ("total", "Total memory of the GPU"),
            )
            for pos, (name, doc) in enumerate(names):
                fam = GaugeMetricFamily(f"stoker_gpu_memory_{name}_bytes", doc, labels=["gpu"])
                for gpu, values in sorted(self.memory.items()):
                    fam.add_metric([gpu], values[pos])
                yield fam
        yield from self._collect_nvml()

    def _handles(self) -> list[tuple[str, Any]]:
        with self._lock:
            if self._nvml is None:
                self._nvml = _nvml_handles(self.visible)
            return self._nvml

    def _collect_nvml(self) -> Iterator[Metric]:
        handles = self._handles()
        if not handles:
            return
        import pynvml

        util = GaugeMetricFamily(
            "stoker_gpu_utilization_ratio",
            "Fraction of the last sample period the GPU was busy (NVML)",
            labels=["gpu"],
        )
        temp = GaugeMetricFamily(
            "stoker_gpu_temperature_celsius", "GPU core temperature (NVML)", labels=["gpu"]
        )
        for label, handle in handles:
            try:
                util.add_metric([label], pynvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100)
                temp.add_metric(
                    [label], pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
                )
            except pynvml.NVMLError:
                continue
        yield util
        yield temp


def _nvml_handles(visible: list[str] | None) -> list[tuple[str, Any]]:
    """(label, NVML handle) of each visible GPU; [] without NVML or a GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        if visible is None:
            visible = [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
        out = []
        for entry in visible:
            if entry.isdigit():
                out.append((entry, pynvml.nvmlDeviceGetHandleByIndex(int(entry))))
            else:
                out.append((entry, pynvml.nvmlDeviceGetHandleByUUID(entry)))
        return out
    except Exception:  # no library, no driver, no device: nothing to export
        return []


def visible_from_env() -> str | None:
    return os.environ.get("CUDA_VISIBLE_DEVICES")
