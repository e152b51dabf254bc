"""A tiny HTTP server for `/metrics`, `/healthz` and `/readyz` (a worker, or the exporter).

Standard library only, one thread per request (a slow scrape never blocks a probe), no
request logging. Started by `start()`, never by its constructor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

#: A route: request headers -> (HTTP status, content type, body).
Route = Callable[[Mapping[str, str]], tuple[int, str, bytes]]


def metrics_route(registry: CollectorRegistry) -> Route:
    """Prometheus text (or OpenMetrics, when the scraper asks for it) of `registry`."""

    def route(headers: Mapping[str, str]) -> tuple[int, str, bytes]:
        encoder, content_type = choose_encoder(headers.get("Accept", ""))
        return 200, content_type, encoder(registry)

    return route


def check_route(check: Callable[[], tuple[bool, dict[str, str]]]) -> Route:
    """200 `ok` or 503 with the failing checks, one `name: reason` per line."""

    def route(_headers: Mapping[str, str]) -> tuple[int, str, bytes]:
        ok, details = check()
        body = "".join(f"{name}: {reason}\n" for name, reason in details.items())
        return (200 if ok else 503), "text/plain; charset=utf-8", body.encode()

    return route


class Endpoint:
    """Serves `routes` on `host:port` from a daemon thread."""

    def __init__(self, host: str, port: int, routes: dict[str, Route]) -> None:
        self.host = host
        self.port = port
        self.routes = routes
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind (OSError if the port is taken) and serve in the background."""
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    status, ctype, body = 404, "text/plain", b"not found\n"
                else:
                    try:
                        status, ctype, body = route(self.headers)
                    except Exception as exc:  # a broken collector must not kill the server
                        status, ctype, body = 500, "text/plain", f"{exc}\n".encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return None

        server = ThreadingHTTPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]  # the real one when asked for port 0
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="stoker-metrics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
