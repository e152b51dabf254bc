"""A processor for `bench/gpu_check.py`: its first attempt asks CUDA for more memory than
the device has (a real `torch.cuda.OutOfMemoryError`); later attempts allocate a little
and answer. The worker classifies the error as out-of-memory, frees the CUDA cache and
retries the job."""

from __future__ import annotations

from typing import Any

from processors.base import Context, Params, Processor


class OomParams(Params):
    megabytes: int = 64


class OomOnce(Processor):
    name = "gpu_oom_once"
    Params = OomParams

    def process(self, params: OomParams, ctx: Context) -> Any:
        import torch

        device = torch.device(ctx.device)
        if ctx.attempt == 1:
            total = torch.cuda.get_device_properties(device).total_memory
            torch.empty(int(total * 1.5), dtype=torch.uint8, device=device)  # raises
        block = torch.ones(params.megabytes * 2**20, dtype=torch.uint8, device=device)
        return {"attempt": ctx.attempt, "allocated_mib": int(block.numel() / 2**20)}
