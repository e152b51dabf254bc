"""Server-sent events for a job's progress: its row's state first, then every published event.

The stream holds no database connection: the first event is read once (through the
core), the rest come from the `ProgressHub`'s single pub/sub connection. A comment every
15 s keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from worker.web.core import WebCore

KEEPALIVE = 15.0


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, default=str)}\n\n"


async def progress_stream(request: Request, core: WebCore, job_id: str) -> StreamingResponse:
    row = await core.call(core.admin.job, job_id)
    first = {
        "job_id": job_id,
        "status": (row or {}).get("status", "unknown"),
        "progress": (row or {}).get("progress"),
        "stage": (row or {}).get("stage"),
    }
    hub = request.app.state.hub
    channel = core.admin.keys.progress_channel(job_id)

    async def stream() -> AsyncIterator[str]:
        yield "retry: 2000\n" + _event(first)
        async with hub.watch(channel) as queue:
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield _event({k: event.get(k) for k in ("job_id", "progress", "stage")})

    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
