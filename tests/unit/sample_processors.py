"""Processors used by the registry and worker tests, as a third party would write them."""

from __future__ import annotations

from typing import Any

from processors.base import Context, Item, Params, Processor


class TextParams(Params):
    text: str


class UpperProcessor(Processor):
    """Upper-cases its text; counts how often it was loaded."""

    name = "upper"
    Params = TextParams
    loads = 0

    def load(self, device: str) -> None:
        type(self).loads += 1
        self.device = device

    def process(self, params: TextParams, ctx: Context) -> dict:
        return {"text": params.text.upper(), "loads": type(self).loads, "device": ctx.device}


class ShoutProcessor(UpperProcessor):
    name = "shout"


class PreparedParams(Params):
    text: str = ""
    broken: bool = False
    """`process_batch` raises for the whole call when any member has it."""


class PreparedProcessor(Processor):
    """Prepares its input (upper-cases the text, counting calls) and batches up to 4."""

    name = "prepared"
    Params = PreparedParams
    batch_size = 4

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: list[str] = []

    def prepare(self, params: PreparedParams, ctx: Context) -> str:
        self.prepared.append(ctx.job_id)
        return params.text.upper()

    def process(self, params: str, ctx: Context) -> Any:
        return {"text": params, "batch": 1}

    def process_batch(self, items: list[Item]) -> list[Any]:
        if any(item.params.broken for item in items):
            raise RuntimeError("the whole call broke")
        return [
            ValueError("empty") if not item.input else {"text": item.input, "batch": len(items)}
            for item in items
        ]
