"""Processors used by the registry and worker tests, as a third party would write them."""

from __future__ import annotations

from processors.base import Context, Params, Processor


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
