"""Who may reach the dashboard, and what a request must carry to change anything.

- `check_bind`: a non-loopback address needs credentials, else the app refuses to start.
- `Guard` (ASGI middleware), on every request: the `Host` header must be allowed (on a
  loopback bind only loopback names: no DNS rebinding); with credentials set, a bearer
  token, basic auth, or the login cookie; mutating methods are POST only, and a POST's
  `Origin` (or `Referer`) must be this very origin; security headers on every answer
  (a strict Content-Security-Policy: scripts and styles from the app itself only).
- Forms also carry a CSRF token (double submit: a cookie and a hidden field, compared in
  `check_csrf_form`); JSON API calls need `Content-Type: application/json`, which no
  cross-site form can send without a preflight this app never grants.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from typing import Any
from urllib.parse import urlsplit

from config import WebSettings

CSRF_COOKIE = "stoker_csrf"
AUTH_COOKIE = "stoker_auth"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
OPEN_PATHS = {"/login", "/static/style.css"}

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class InsecureBind(RuntimeError):
    """Refused: listening beyond loopback without credentials."""


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def has_credentials(web: WebSettings) -> bool:
    token = web.auth_token.get_secret_value() if web.auth_token else ""
    password = web.auth_password.get_secret_value() if web.auth_password else ""
    return bool(token) or bool(web.auth_user and password)


def check_bind(web: WebSettings, host: str) -> None:
    """Raise InsecureBind when `host` is not loopback and no credentials are set."""
    if not is_loopback(host) and not has_credentials(web):
        raise InsecureBind(
            f"refusing to listen on {host}: set WEB_AUTH_TOKEN (or WEB_AUTH_USER and "
            "WEB_AUTH_PASSWORD) to serve beyond 127.0.0.1"
        )


def login_cookie_value(web: WebSettings) -> str:
    """What the login cookie holds: an HMAC of the token, never the token itself."""
    token = web.auth_token.get_secret_value() if web.auth_token else ""
    return hmac.new(token.encode(), b"stoker-web-login", hashlib.sha256).hexdigest()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def check_csrf_form(cookie: str | None, submitted: str | None) -> bool:
    return bool(cookie and submitted) and hmac.compare_digest(str(cookie), str(submitted))


class Guard:
    """ASGI middleware: allowed hosts, authentication, POST-only with a same-origin check."""

    def __init__(self, app: Any, web: WebSettings, bind_host: str) -> None:
        self.app = app
        self.web = web
        self.hosts = {h.lower() for h in web.allowed_hosts}
        if not self.hosts and is_loopback(bind_host):
            self.hosts = set(LOOPBACK_NAMES)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope, headers)
        if refusal is not None:
            await _json(send, *refusal)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def refusal(self, scope: dict[str, Any], headers: dict[str, str]) -> tuple | None:
        """(status, message, extra headers) when the request is refused, else None."""
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self.hosts and "*" not in self.hosts and name.lower() not in self.hosts:
            return 400, f"host {host!r} is not allowed (WEB_ALLOWED_HOSTS)", []
        method, path = scope["method"], scope["path"]
        if not (path in OPEN_PATHS or self.authenticated(headers)):
            return self.unauthenticated(headers, path)
        if method not in SAFE_METHODS:
            if method != "POST":
                return 405, "only GET and POST are served", [(b"allow", b"GET, POST")]
            if not self.same_origin(headers, scope):
                return 403, "cross-origin request refused (Origin does not match)", []
        return None

    def authenticated(self, headers: dict[str, str]) -> bool:
        if not has_credentials(self.web):
            return True
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        token = self.web.auth_token.get_secret_value() if self.web.auth_token else ""
        if token and scheme.lower() == "bearer":
            return hmac.compare_digest(value.strip().encode(), token.encode())
        if scheme.lower() == "basic" and self.web.auth_user and self.web.auth_password:
            try:
                user, _, pw = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            want = self.web.auth_password.get_secret_value()
            return hmac.compare_digest(user.encode(), self.web.auth_user.encode()) & (
                hmac.compare_digest(pw.encode(), want.encode())
            )
        if token:
            cookie = _cookies(headers.get("cookie", "")).get(AUTH_COOKIE, "")
            return hmac.compare_digest(cookie.encode(), login_cookie_value(self.web).encode())
        return False

    def unauthenticated(self, headers: dict[str, str], path: str) -> tuple:
        wants_html = "text/html" in headers.get("accept", "") and not path.startswith("/api/")
        if self.web.auth_token and wants_html:
            return 303, "log in first", [(b"location", b"/login")]
        extra = []
        if self.web.auth_user:
            extra.append((b"www-authenticate", b'Basic realm="stoker", charset="UTF-8"'))
        return 401, "authentication required", extra

    @staticmethod
    def same_origin(headers: dict[str, str], scope: dict[str, Any]) -> bool:
        """The Origin (else Referer) names this host; neither (curl, scripts) is allowed:
        a browser always sends Origin with a POST."""
        origin = headers.get("origin") or headers.get("referer")
        if origin is None:
            return headers.get("sec-fetch-site") in (None, "same-origin", "none")
        parts = urlsplit(origin)
        scheme = scope.get("scheme", "http")
        return parts.scheme == scheme and parts.netloc.lower() == headers.get("host", "").lower()


def _cookies(header: str) -> dict[str, str]:
    out = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            out[name] = value
    return out


async def _json(send: Any, status: int, message: str, extra: list) -> None:
    import json

    body = json.dumps({"error": message, "status": status}).encode()
    headers = [(b"content-type", b"application/json"), *extra, *HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
