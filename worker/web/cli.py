"""`python -m worker web [--host H] [--port P] [--read-only]`: serve the dashboard and API."""

from __future__ import annotations

import argparse
from typing import Any

from config import Settings

COMMANDS = {"web"}


def add_parsers(sub: Any) -> None:
    web = sub.add_parser("web", help="serve the web dashboard and HTTP API (docs/web.md)")
    web.add_argument("--host", help="listen address (default WEB_HOST, 127.0.0.1)")
    web.add_argument("--port", type=int, help="port (default WEB_PORT, 9181)")
    web.add_argument("--read-only", action="store_true", help="hide and refuse every action")


def run(command: str, args: argparse.Namespace, settings: Settings) -> int:
    from worker.logs import configure_logging
    from worker.web.app import serve

    configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    if args.read_only:
        web = settings.web.model_copy(update={"read_only": True})
        settings = settings.model_copy(update={"web": web})
    return serve(settings, host=args.host, port=args.port)
