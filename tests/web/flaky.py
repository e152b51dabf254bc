"""A processor for the browser tests: fails (permanently) until its `ready_file` exists."""

from __future__ import annotations

from pathlib import Path

from processors import Context, Params, PermanentError, Processor, register


class FlakyParams(Params):
    ready_file: str


@register
class Flaky(Processor):
    """Fails until `ready_file` exists, then answers `{"ok": true}`."""

    name = "flaky"
    Params = FlakyParams

    def process(self, params: FlakyParams, ctx: Context) -> dict:
        if not Path(params.ready_file).exists():
            raise PermanentError(f"not ready: {params.ready_file} is missing")
        return {"ok": True}
