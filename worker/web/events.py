"""Server-sent events for a job's progress: its row's state first, then every published event.

The stream holds no database connection: the first event is read once (through the
core), the rest come from the `ProgressHub`'s single pub/sub connection, already encoded
and coalesced (at most 4 a second per stream). A comment every 15 s keeps proxies from
closing an idle stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import StreamingResponse

from worker.web.core import WebCore
from worker.web.progress import sse_chunk


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

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 2000\n" + sse_chunk(first)
        async with hub.watch(channel) as viewer:
            while True:
                yield await viewer.next()

    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
