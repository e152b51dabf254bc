"""The HTTP API under `/api/v1` (JSON; OpenAPI at `/api/openapi.json`, read at `/api/docs`).

Every route is a thin call into `worker.admin.Admin` (the CLI's core) through
`WebCore.call`; errors are `{"error": message, "status": code}` with the AdminError's code.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from worker.admin import AdminError
from worker.queries import BadCursor, JobFilter, frame_summary, list_jobs
from worker.web.core import WebCore
from worker.web.events import progress_stream
from worker.web.schema import processor_schemas

router = APIRouter(prefix="/api/v1")


class EnqueueRequest(BaseModel):
    processor: str = Field(description="a registered processor name")
    params: dict[str, Any] = Field(default_factory=dict, description="the processor's params")
    queue: str | None = Field(default=None, description="default: the first of WORKER_QUEUES")
    id: str | None = Field(default=None, description="your job id; default: generated")
    delay: float = Field(default=0.0, ge=0, description="seconds before it may run")
    max_attempts: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, ge=0)


class Accepted(BaseModel):
    id: str
    queue: str | None = None
    status: str = "queued"


class FailedRequeue(BaseModel):
    id: str | None = Field(default=None, description="one failed job")
    error_type: str | None = Field(default=None, description="every failed job of this type")
    all: bool = Field(default=False, description="the whole failed list")


def core_of(request: Request) -> WebCore:
    return request.app.state.core


def refuse_if_read_only(request: Request) -> None:
    if core_of(request).settings.web.read_only:
        raise AdminError("read-only dashboard (WEB_READ_ONLY): actions are disabled", 403)


def require_json(request: Request) -> None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise AdminError("send Content-Type: application/json", 415)


@router.get("/jobs", summary="List jobs, newest first (keyset pages)")
async def jobs(
    request: Request,
    status: str | None = None,
    processor: str | None = None,
    queue: str | None = None,
    search: str | None = Query(default=None, description="id prefix"),
    cursor: str | None = Query(default=None, description="`next_cursor` of the previous page"),
    limit: int = Query(default=50, ge=1, le=1000),
) -> dict[str, Any]:
    core = core_of(request)
    flt = JobFilter(status or None, processor or None, queue or None, search or None)
    try:
        page = await core.call(list_jobs, core.admin.store.engine, flt, limit=limit, cursor=cursor)
    except BadCursor as exc:
        raise AdminError(str(exc), 400) from None
    return {"jobs": page.rows, "next_cursor": page.next_cursor}


@router.post("/jobs", status_code=202, response_model=Accepted, summary="Enqueue a job")
async def enqueue(request: Request, body: EnqueueRequest) -> Accepted:
    refuse_if_read_only(request)
    require_json(request)
    core = core_of(request)
    job = await core.call(
        core.admin.enqueue,
        body.processor,
        body.params,
        queue=body.queue,
        job_id=body.id,
        delay=body.delay,
        max_attempts=body.max_attempts,
        timeout=body.timeout,
    )
    return Accepted(id=job.id, queue=body.queue or core.settings.queues[0])


@router.get("/jobs/{job_id:path}/events", summary="Progress events (text/event-stream)")
async def job_events(request: Request, job_id: str) -> Any:
    return await progress_stream(request, core_of(request), job_id)


@router.post("/jobs/{job_id:path}/cancel", summary="Cancel a queued, scheduled or running job")
async def cancel(request: Request, job_id: str) -> JSONResponse:
    refuse_if_read_only(request)
    core = core_of(request)
    result = await core.call(core.admin.cancel, job_id)
    code = {"unknown": 404, "finished": 409}.get(result.state, 200)
    body = {"id": job_id, "state": result.state, "message": result.message}
    if code != 200:
        body |= {"error": result.message, "status": code}
    return JSONResponse(body, status_code=code)


@router.post(
    "/jobs/{job_id:path}/requeue",
    status_code=202,
    response_model=Accepted,
    summary="Run a failed or finished job again (same id)",
)
async def requeue(request: Request, job_id: str) -> Accepted:
    refuse_if_read_only(request)
    core = core_of(request)
    jid, queue = await core.call(core.admin.retry, job_id)
    return Accepted(id=jid, queue=queue)


@router.post("/jobs/{job_id:path}/run-now", summary="Make a scheduled job due now")
async def run_now(request: Request, job_id: str) -> dict[str, Any]:
    refuse_if_read_only(request)
    core = core_of(request)
    await core.call(core.admin.run_now, job_id)
    return {"id": job_id, "state": "due"}


@router.get("/jobs/{job_id:path}", summary="One job: its row, attempts and frame summary")
async def job(request: Request, job_id: str) -> dict[str, Any]:
    core = core_of(request)
    return await core.call(job_detail, core, job_id)


def job_detail(core: WebCore, job_id: str, frames: bool = True) -> dict[str, Any]:
    """The job (row, else where it sits in Redis) with its attempts (and a summary of its
    frame results unless `frames` is false); 404 when unknown."""
    admin = core.admin
    row = admin.job(job_id)
    if row is None:
        raise AdminError(f"no job {job_id}", 404)
    row = dict(row)
    row["attempts_history"] = admin.store.attempts(job_id)
    if frames:
        row["frame_results"] = frame_summary(admin.store.engine, job_id)  # one indexed COUNT
    return row


@router.get("/queues", summary="Per queue: depth, oldest job's age, in flight, scheduled, failed")
async def queues(request: Request) -> dict[str, Any]:
    core = core_of(request)
    return await core.call(overview, core)


def overview(core: WebCore) -> dict[str, Any]:
    admin = core.admin
    workers = admin.workers()
    return {
        "queues": admin.queue_stats(workers),
        "scheduled": admin.client.zcard(admin.keys.scheduled),
        "failed": admin.client.llen(admin.keys.failed),
        "workers": workers,
        "live_workers": sum(1 for w in workers if w["alive"]),
    }


@router.get("/workers", summary="Registered workers, live and dead")
async def workers(request: Request) -> list[dict[str, Any]]:
    core = core_of(request)
    return await core.call(core.admin.workers)


@router.get("/failed", summary="The failed list, newest first")
async def failed(request: Request) -> list[dict[str, Any]]:
    core = core_of(request)
    return [e for _, e in await core.call(core.admin.failed)]


@router.post("/failed/requeue", summary="Requeue one failed job, an error type, or all")
async def failed_requeue(request: Request, body: FailedRequeue) -> dict[str, Any]:
    refuse_if_read_only(request)
    require_json(request)
    admin = core_of(request).admin
    if body.id:
        done = await core_of(request).call(admin.requeue_failed, body.id)
    elif body.error_type:
        done = await core_of(request).call(admin.requeue_failed_type, body.error_type)
    elif body.all:
        done = await core_of(request).call(admin.requeue_failed, None)
    else:
        raise AdminError("name an id, an error_type, or all: true")
    return {"requeued": [{"id": i, "queue": q} for i, q in done]}


@router.post("/failed/purge", summary="Empty the failed list (job rows stay)")
async def failed_purge(request: Request) -> dict[str, int]:
    refuse_if_read_only(request)
    core = core_of(request)
    return {"purged": await core.call(core.admin.purge_failed)}


@router.get("/scheduled", summary="Retries and run_at jobs, soonest first")
async def scheduled(request: Request) -> list[dict[str, Any]]:
    core = core_of(request)
    return await core.call(core.admin.scheduled)


@router.get("/processors", summary="Registered processors and their params' JSON schema")
async def processors(request: Request) -> dict[str, Any]:
    return await core_of(request).call(processor_schemas)


@router.get("/throughput", summary="Jobs finished per minute over the last hour")
async def throughput(request: Request) -> list[dict[str, Any]]:
    core = core_of(request)
    rows = await core.call(core.throughput.per_minute)  # type: ignore[union-attr]
    return [{"minute": m.isoformat(), "finished": n} for m, n in rows]
