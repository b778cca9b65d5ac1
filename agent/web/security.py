"""Who may use the server, and the headers every response carries.

- **Token.** Bound to a loopback address the server needs none; bound anywhere else it requires one
  (given with ``--token`` or generated and printed at start). A client proves it with
  ``Authorization: Bearer TOKEN`` or with a cookie, which a one-time login link (or the login form) sets.
  The cookie holds an HMAC of the token, not the token.
- **Host and origin.** On loopback, requests must name a loopback host (a web page elsewhere cannot
  reach the server through DNS rebinding); state-changing requests whose ``Origin`` is another site are
  refused (no cross-site form posts, with or without a cookie).
- **Headers.** Every response gets a Content-Security-Policy (scripts and styles from the server only, no
  inline script; a route may set a stricter one, as the report pages do), ``nosniff``, no referrer and no
  framing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from urllib.parse import urlsplit

from serendip.agent.tool_profiles import is_loopback_host
from starlette.datastructures import Headers, MutableHeaders

COOKIE_NAME = "serendip_auth"
LOGIN_CODE_TTL_S = 24 * 3600
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
REPORT_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'self'; sandbox")
COMMON_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY",
                  "cross-origin-opener-policy": "same-origin"}
PUBLIC_PREFIXES = ("/login", "/static/", "/favicon.ico")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


is_loopback = is_loopback_host  # one definition of "this machine" for the server and the model client


def host_part(value: str | None) -> str:
    """The host of a Host header value, without the port ('[::1]:8765' -> '::1')."""
    value = (value or "").strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def new_token() -> str:
    """A fresh random token."""
    return secrets.token_urlsafe(24)


def cookie_value(token: str) -> str:
    """What the login cookie holds for ``token`` (an HMAC, so the cookie never carries the token)."""
    return hmac.new(token.encode(), b"serendip-web-login", hashlib.sha256).hexdigest()


class LoginCodes:
    """One-time codes for login links: each works once, within a day."""

    def __init__(self) -> None:
        self._codes: dict[str, float] = {}
        self._lock = threading.Lock()

    def mint(self) -> str:
        """A new code."""
        code = secrets.token_urlsafe(18)
        with self._lock:
            self._codes[hashlib.sha256(code.encode()).hexdigest()] = time.time() + LOGIN_CODE_TTL_S
        return code

    def redeem(self, code: str) -> bool:
        """True (once) for a valid code."""
        key = hashlib.sha256((code or "").encode()).hexdigest()
        with self._lock:
            expires = self._codes.pop(key, None)
        return expires is not None and expires > time.time()


class Gate:
    """The access rules of one server.

    Args:
        token: The token clients must show (None: no token needed).
        allowed_hosts: Host names the server answers to (None: any).
    """

    def __init__(self, token: str | None, allowed_hosts: set[str] | None) -> None:
        self.token = token
        self.allowed_hosts = allowed_hosts
        self.codes = LoginCodes()
        self._cookie = cookie_value(token) if token else ""

    def authorized(self, headers: Headers) -> bool:
        """True when no token is needed or the request shows it (bearer header or login cookie)."""
        if not self.token:
            return True
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip().encode(), self.token.encode()):
            return True
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE_NAME and hmac.compare_digest(value.encode(), self._cookie.encode()):
                return True
        return False

    def check_token(self, candidate: str) -> bool:
        """True when ``candidate`` is the token."""
        return bool(self.token) and hmac.compare_digest((candidate or "").strip().encode(), self.token.encode())

    @property
    def cookie(self) -> str:
        """The login cookie's value."""
        return self._cookie


async def _send_json(send, status: int, message: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": body})


class SecurityMiddleware:
    """ASGI middleware applying a :class:`Gate` and adding the security headers to every response.

    Args:
        app: The wrapped application.
        gate: The access rules.
    """

    def __init__(self, app, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers:
                    headers["content-security-policy"] = PAGE_CSP
                for name, value in COMMON_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        headers = Headers(scope=scope)
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        host = host_part(headers.get("host"))
        if self.gate.allowed_hosts is not None and host not in self.gate.allowed_hosts:
            await _send_json(send_with_headers, 400, "this server answers only to its loopback address "
                                                     "(start it with --host and a --token to expose it)")
            return
        if method not in SAFE_METHODS and not self._same_origin(headers):
            await _send_json(send_with_headers, 403, "cross-site request refused")
            return
        if not path.startswith(PUBLIC_PREFIXES) and not self.gate.authorized(headers):
            if path.startswith("/api/") or path in ("/openapi.json", "/docs"):
                await _send_json(send_with_headers, 401, "a token is needed: send 'Authorization: Bearer TOKEN' or "
                                                         "log in with the link the server printed",
                                 [(b"www-authenticate", b"Bearer")])
            else:
                await send_with_headers({"type": "http.response.start", "status": 303,
                                         "headers": [(b"location", b"/login"), (b"content-length", b"0")]})
                await send_with_headers({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _same_origin(headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is None:
            return True  # not a browser's cross-site request (browsers send Origin on every cross-site POST)
        netloc = urlsplit(origin).netloc.lower()
        hosts = {(headers.get("host") or "").lower(), (headers.get("x-forwarded-host") or "").lower()} - {""}
        return bool(netloc) and netloc in hosts
