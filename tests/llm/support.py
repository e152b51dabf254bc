"""Helpers for the LLM tests: a Context builder, a sample transcript, and a small threaded
HTTP server that speaks the OpenAI chat-completions protocol."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from config import Settings
from processors.base import Context

TRANSCRIPT = """ALICE: Good morning. Let's review the launch plan for the mobile app.
BOB: The backend is ready. QA found two minor bugs and we fixed them yesterday.
ALICE: Then we ship on Friday. Carol, please prepare the release notes.
CAROL: Will do. I will also email our beta customers on Thursday.
BOB: I will keep an eye on the error dashboards during the first weekend."""


def make_context(
    settings: Settings,
    jobs: dict[str, dict[str, Any]] | None = None,
    *,
    stop: bool = False,
    log: Any = None,
) -> Context:
    """A Context as the worker builds it, with `job_result` answering from `jobs`."""
    known = jobs or {}
    return Context(
        job_id="t1",
        device="cpu",
        log=log or structlog.get_logger(),
        settings=settings,
        _job_result=lambda job_id: known.get(job_id),
        _stop=lambda: stop,
    )


@dataclass
class Reply:
    """A scripted response: status, JSON-able or raw body, headers, delay before answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeOpenAIServer:
    """A real HTTP server on 127.0.0.1 answering `POST /v1/chat/completions`.

    By default it answers "answer to: <first line of the last user message's task>" with
    usage counted in words. `script` holds replies served first, in order; `responder`, when
    set, decides every reply from the request body.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[Reply] = []
        self.responder: Callable[[dict[str, Any]], Reply] | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if self.path != "/v1/chat/completions":
                    self._send(Reply(404, {"error": {"message": f"no route {self.path}"}}))
                    return
                body = json.loads(raw)
                with server._lock:
                    server.requests.append({"headers": dict(self.headers), "body": body})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    reply = (
                        server.script.pop(0)
                        if server.script
                        else server.responder(body)
                        if server.responder
                        else default_reply(body)
                    )
                try:
                    time.sleep(reply.delay)
                    self._send(reply)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, reply: Reply) -> None:
                payload = (
                    reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                )
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def completion(content: str, prompt_tokens: int = 11, completion_tokens: int = 7) -> dict:
    """A chat-completions response body."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def default_reply(body: dict[str, Any]) -> Reply:
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    task = user.rstrip().splitlines()[-1]
    words = sum(len(m["content"].split()) for m in body["messages"])
    content = f"answer to: {task}"
    return Reply(200, completion(content, words, len(content.split())))
