"""The dashboard's pages (server-rendered Jinja2, refreshed in place by htmx) and forms.

Reads and actions are the same `Admin` calls as the API's and the CLI's. Every form
POST carries the CSRF token; after an action the browser is sent back (303) to the page
it came from with a one-line message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from worker.admin import AdminError
from worker.queries import BadCursor, JobFilter, list_jobs
from worker.web import views
from worker.web.api import core_of, job_detail, overview
from worker.web.core import WebCore
from worker.web.schema import form_fields, params_from_form, processor_schemas
from worker.web.security import (
    AUTH_COOKIE,
    CSRF_COOKIE,
    check_csrf_form,
    login_cookie_value,
    new_csrf_token,
)

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).parent / "templates"
ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
ENV.filters.update(views.FILTERS)
ENV.globals["STATUSES"] = views.STATUSES

#: Output files shown inline as text; anything else downloads (never rendered as HTML).
TEXT_SUFFIXES = {".rttm", ".txt", ".json", ".srt", ".vtt", ".csv", ".tsv", ".log", ".md"}


def render(
    request: Request, template: str, status: int = 200, token: str | None = None, **ctx: Any
) -> HTMLResponse:
    core: WebCore = core_of(request)
    token = token or request.cookies.get(CSRF_COOKIE) or new_csrf_token()
    body = ENV.get_template(template).render(
        request=request,
        path=quote(request.url.path, safe="/"),
        query=request.url.query,
        csrf=token,
        read_only=core.settings.web.read_only,
        refresh=core.settings.web.refresh,
        login=bool(core.settings.web.auth_token),
        message=request.query_params.get("msg", ""),
        **ctx,
    )
    response = HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status=status, status_code=status, error=message)


async def read_form(request: Request) -> dict[str, str]:
    """The url-encoded form, after the CSRF check (403 AdminError when it fails)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    form = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
    if not check_csrf_form(request.cookies.get(CSRF_COOKIE), form.get("csrf")):
        raise AdminError("missing or wrong CSRF token: reload the page and try again", 403)
    return form


def back(form: dict[str, str], fallback: str, message: str) -> RedirectResponse:
    target = form.get("next") or fallback
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        target = fallback
    target = target.split("#")[0]
    sep = "&" if "?" in target else "?"
    target = f"{target}{sep}{urlencode({'msg': message})}" if message else target
    return RedirectResponse(target, status_code=303)


async def act(request: Request) -> tuple[WebCore, dict[str, str]]:
    core = core_of(request)
    if core.settings.web.read_only:
        raise AdminError("read-only dashboard (WEB_READ_ONLY): actions are disabled", 403)
    return core, await read_form(request)


# Pages
@router.get("/", response_class=HTMLResponse)
async def overview_page(request: Request) -> HTMLResponse:
    core = core_of(request)
    data = await core.call(overview, core)
    chart = await core.call(core.throughput.per_minute)  # type: ignore[union-attr]
    return render(request, "overview.html", data=data, chart=views.bar_chart(chart))


@router.get("/workers", response_class=HTMLResponse)
async def workers_page(request: Request) -> HTMLResponse:
    core = core_of(request)
    workers = await core.call(_workers_with_jobs, core)
    return render(request, "workers.html", workers=workers)


def _workers_with_jobs(core: WebCore) -> list[dict[str, Any]]:
    workers = core.admin.workers()
    for w in workers:
        first = (w.get("current_job") or "").split(",")[0]
        w["job_row"] = core.admin.store.get(first) if first else None
    return workers


@router.get("/jobs", response_class=HTMLResponse)
async def jobs_page(request: Request) -> HTMLResponse:
    core = core_of(request)
    q = request.query_params
    flt = JobFilter(
        q.get("status") or None,
        q.get("processor") or None,
        q.get("queue") or None,
        (q.get("search") or "").strip() or None,
    )
    try:
        page = await core.call(
            list_jobs,
            core.admin.store.engine,
            flt,
            limit=core.settings.web.page_size,
            cursor=q.get("cursor") or None,
        )
    except BadCursor as exc:
        raise AdminError(str(exc), 400) from None
    names = sorted(processor_names())
    return render(
        request,
        "jobs.html",
        page=page,
        flt=flt,
        processors=names,
        queues=core.settings.queues,
        filters_qs=views.filters_qs(flt),
    )


def processor_names() -> set[str]:
    from processors.registry import known_names

    return known_names()


@router.get("/jobs/{job_id:path}/files/{name}")
async def job_file(request: Request, job_id: str, name: str) -> Response:
    core = core_of(request)
    root = Path(core.settings.output_dir).resolve()
    path = (root / job_id / name).resolve()
    if not path.is_file() or not path.is_relative_to(root / job_id) or path.parent == root:
        raise AdminError(f"no file {name} for job {job_id}", 404)
    if path.suffix.lower() in TEXT_SUFFIXES:
        return FileResponse(path, media_type="text/plain; charset=utf-8")
    # Anything else downloads: a job's .html or .svg must never render in this origin.
    return FileResponse(path, media_type="application/octet-stream", filename=path.name)


#: The job page's live section sends the version of the job it shows; when nothing it
#: shows has changed, its refresh is answered 204 (htmx keeps the section) instead of
#: the page read and rendered again.
VERSION_HEADER = "x-job-version"
LIVE_TIMES = ("queued_at", "started_at", "finished_at", "run_at", "updated_at")


@router.get("/jobs/{job_id:path}", response_class=HTMLResponse)
async def job_page(request: Request, job_id: str) -> Response:
    core = core_of(request)
    # htmx refreshing the live section: it keeps only #job-live (not the files or frames).
    refresh = request.headers.get("hx-target") == "job-live"
    row, files = await core.call(_job_view, core, job_id, not refresh)
    token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()  # the one the forms carry
    version = job_version(core, row, token)
    if refresh and request.headers.get(VERSION_HEADER) == version:
        return Response(status_code=204, headers={"cache-control": "no-store"})
    on_failed = row.get("status") == "failed"
    return render(
        request,
        "job.html",
        job=row,
        files=files,
        on_failed=on_failed,
        job_url=views.job_url(job_id),
        version=version,
        token=token,
    )


def _job_view(core: WebCore, job_id: str, whole: bool) -> tuple[dict[str, Any], list[str]]:
    """The job for its page (one thread hop); only what the live section shows unless `whole`."""
    row = job_detail(core, job_id, frames=whole)
    return row, _output_files(core, job_id) if whole else []


def job_version(core: WebCore, row: dict[str, Any], token: str) -> str:
    """A digest of everything the live section shows: the row and its attempts, the times'
    ages as displayed ("4 min ago"), the form token and whether actions are offered."""
    ages = [views.ago(row[k]) for k in LIVE_TIMES if row.get(k)]
    shown = {k: v for k, v in row.items() if k != "frame_results"}  # not in the section
    blob = json.dumps([shown, ages, token, core.settings.web.read_only], default=str)
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


def _output_files(core: WebCore, job_id: str) -> list[str]:
    root = Path(core.settings.output_dir).resolve()
    folder = (root / job_id).resolve()
    if not folder.is_relative_to(root) or folder == root or not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file())[:200]


@router.get("/failed", response_class=HTMLResponse)
async def failed_page(request: Request) -> HTMLResponse:
    core = core_of(request)
    groups = await core.call(core.admin.failed_groups)
    return render(request, "failed.html", groups=groups)


@router.get("/scheduled", response_class=HTMLResponse)
async def scheduled_page(request: Request) -> HTMLResponse:
    core = core_of(request)
    entries = await core.call(core.admin.scheduled)
    return render(request, "scheduled.html", entries=entries)


@router.get("/processors", response_class=HTMLResponse)
async def processors_page(request: Request) -> HTMLResponse:
    core = core_of(request)
    schemas = await core.call(processor_schemas)
    forms = {name: form_fields(s["schema"]) for name, s in schemas.items()}
    return render(
        request, "processors.html", schemas=schemas, forms=forms, queues=core.settings.queues
    )


@router.get("/api/docs", response_class=HTMLResponse)
async def api_docs(request: Request) -> HTMLResponse:
    return render(request, "api_docs.html", spec=request.app.openapi())


# Actions (forms)
@router.post("/jobs/{job_id:path}/cancel")
async def cancel_form(request: Request, job_id: str) -> Response:
    core, form = await act(request)
    result = await core.call(core.admin.cancel, job_id)
    return back(form, views.job_url(job_id), result.message)


@router.post("/jobs/{job_id:path}/requeue")
async def requeue_form(request: Request, job_id: str) -> Response:
    core, form = await act(request)
    jid, queue = await core.call(core.admin.retry, job_id)
    return back(form, views.job_url(job_id), f"requeued {jid} on {queue}")


@router.post("/jobs/{job_id:path}/run-now")
async def run_now_form(request: Request, job_id: str) -> Response:
    core, form = await act(request)
    await core.call(core.admin.run_now, job_id)
    return back(form, "/scheduled", f"job {job_id} is due now")


@router.post("/failed/requeue")
async def failed_requeue_form(request: Request) -> Response:
    core, form = await act(request)
    if form.get("id"):
        done = await core.call(core.admin.requeue_failed, form["id"])
    elif form.get("error_type"):
        done = await core.call(core.admin.requeue_failed_type, form["error_type"])
    else:
        raise AdminError("name a failed job or an error type")
    return back(form, "/failed", f"requeued {len(done)} job(s)")


@router.post("/failed/purge")
async def failed_purge_form(request: Request) -> Response:
    core, form = await act(request)
    if form.get("confirm") != "purge":
        raise AdminError("type 'purge' to confirm emptying the failed list")
    n = await core.call(core.admin.purge_failed)
    return back(form, "/failed", f"purged {n} failed job(s)")


@router.post("/processors/{name}/enqueue")
async def enqueue_form(request: Request, name: str) -> Response:
    core, form = await act(request)
    schemas = await core.call(processor_schemas)
    if name not in schemas:
        raise AdminError(f"unknown processor {name!r}", 404)
    if raw := form.get("params_json", "").strip():
        try:
            params = json.loads(raw)
        except ValueError as exc:
            raise AdminError(f"params is not JSON: {exc}") from None
    else:
        params = params_from_form(schemas[name]["schema"], form)
    delay = float(form.get("delay") or 0) if views.is_number(form.get("delay")) else 0.0
    job = await core.call(
        core.admin.enqueue,
        name,
        params,
        queue=form.get("queue") or None,
        job_id=form.get("id") or None,
        delay=delay,
    )
    return RedirectResponse(f"{views.job_url(job.id)}?{urlencode({'msg': 'enqueued'})}", 303)


# Login (WEB_AUTH_TOKEN)
@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html")


@router.post("/login")
async def login(request: Request) -> Response:
    core = core_of(request)
    form = await read_form(request)
    token = core.settings.web.auth_token
    if token is None or not hmac.compare_digest(
        form.get("token", "").encode(), token.get_secret_value().encode()
    ):
        return render(request, "login.html", status=401, error="wrong token")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        AUTH_COOKIE, login_cookie_value(core.settings.web), httponly=True, samesite="strict"
    )
    return response


__all__ = ["error_page", "router"]
