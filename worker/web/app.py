"""The ASGI app (FastAPI): pages, `/api/v1`, `/metrics`, static assets; and `serve()`.

`create_app(settings)` builds it; `serve(settings)` checks the bind address (a
non-loopback one needs credentials) and runs it under uvicorn.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from config import Settings
from worker.admin import Admin, AdminError
from worker.web import api, pages
from worker.web.core import WebCore
from worker.web.progress import ProgressHub, async_client
from worker.web.security import Guard, check_bind

STATIC = Path(__file__).parent / "static"


def create_app(
    settings: Settings, *, admin: Admin | None = None, host: str | None = None
) -> FastAPI:
    """The dashboard for `settings`; `admin` reuses existing connections (tests)."""
    core = WebCore(settings, admin)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await to_thread.run_sync(core.open)
        app.state.hub = ProgressHub(async_client(core.admin.client, core.redis_url))
        try:
            yield
        finally:
            await app.state.hub.close()
            await to_thread.run_sync(core.close)

    app = FastAPI(
        title="Stoker",
        summary="Jobs, queues, workers and the failed list of a Stoker deployment.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.core = core
    app.add_exception_handler(AdminError, _admin_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.add_api_route("/metrics", _metrics, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Guard, web=settings.web, bind_host=host or settings.web.host)
    return app


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "text/html" not in request.headers.get(
        "accept", ""
    )


def _error(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message, "status": status}, status_code=status)
    return pages.error_page(request, status, message)


async def _admin_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AdminError)
    return _error(request, exc.code, exc.message)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {e.get('msg')}")
    return _error(request, 422, "invalid request: " + "; ".join(parts))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, str(exc.detail))


async def _metrics(request: Request) -> Response:
    """The cluster metrics (worker.cluster_metrics), as `python -m worker exporter` serves."""
    from worker.cluster_metrics import cluster_registry, render

    core: WebCore = request.app.state.core
    state = request.app.state
    if getattr(state, "metrics_registry", None) is None:
        admin = core.admin
        state.metrics_registry = cluster_registry(
            admin.client, admin.keys, list(core.settings.queues), admin.store.engine
        )
    accept = request.headers.get("accept", "")
    try:
        body, ctype = await to_thread.run_sync(render, state.metrics_registry, accept)
    except Exception as exc:  # the exporter's own bug must not look like ours
        raise AdminError(f"cluster metrics failed: {type(exc).__name__}: {exc}", 503) from None
    return Response(body, media_type=ctype)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    """Run the dashboard until interrupted; 2 when the bind address is refused."""
    import sys

    import uvicorn

    from worker.web.security import InsecureBind

    host = host or settings.web.host
    port = settings.web.port if port is None else port
    try:
        check_bind(settings.web, host)
    except InsecureBind as exc:
        print(f"stoker web: {exc}", file=sys.stderr)
        return 2
    print(f"stoker web: http://{_hostport(host, port)}", file=sys.stderr, flush=True)
    app = create_app(settings, host=host)
    # Open event streams never end by themselves: a stop waits for them at most 3 s.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
    )
    return 0


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = ["create_app", "serve"]
