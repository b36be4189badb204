"""ASGI middleware: request ids, the optional API key, and request metrics.

Plain ASGI callables rather than ``BaseHTTPMiddleware``, which would add a task
and a memory stream to every request.
"""

from __future__ import annotations

import hmac
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlpilot.serve._metrics import Metrics

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/login", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)
COOKIE = "mlpilot_api_key"
_MODEL_ROUTE = re.compile(r"^/v1/models/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})(/[A-Za-z0-9_.]+)?$")
_UI_ROUTE = re.compile(r"^/ui/models/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})(/.*)?$")
#: What a client's own ``X-Request-ID`` may be: 1 to 128 letters, digits and ``._:-``.
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
REQUEST_ID_HEADER = b"x-request-id"


async def _send_json(send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class RequestIdMiddleware:
    """Give every request an id: the client's valid ``X-Request-ID`` or a new one.

    The id is put in ``request.state.request_id`` (the routes log it and return
    it in their JSON) and in the ``X-Request-ID`` header of every response. A
    client's id that is too long or has other characters than letters, digits
    and ``._:-`` is refused with 400 before anything else runs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope.get("headers", ()) if name == REQUEST_ID_HEADER), None)
        if given is None:
            request_id = uuid.uuid4().hex
        else:
            request_id = given.decode("latin-1")
            if not REQUEST_ID.match(request_id):
                shown = request_id[:40] + ("..." if len(request_id) > 40 else "")
                await _send_json(send, 400, {
                    "error": "InvalidParameterError",
                    "detail": f"The X-Request-ID header {shown!r} ({len(request_id)} characters) is not a valid "
                    "request id: send 1 to 128 characters, letters, digits and '._:-' only, starting with a "
                    "letter or digit; or leave the header out and the server makes one.",
                }, [])
                return
        scope.setdefault("state", {})["request_id"] = request_id
        header = (REQUEST_ID_HEADER, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def request_id_of(request: Any) -> str:
    """The id `RequestIdMiddleware` gave ``request`` (a new one if it did not run)."""
    state = request.scope.setdefault("state", {})
    if "request_id" not in state:
        state["request_id"] = uuid.uuid4().hex
    return str(state["request_id"])


class ApiKeyMiddleware:
    """Require ``Authorization: Bearer <key>`` (or the UI's login cookie) on all but health paths."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        wants_html = any(
            name == b"accept" and b"text/html" in value for name, value in scope.get("headers", ())
        )
        if wants_html and not path.startswith("/v1/"):
            asked = path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
            location = "/login" if asked == "/" else "/login?" + urlencode({"next": asked})
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await _send_json(send, 401, {
            "error": "Unauthorized",
            "detail": "This server requires an API key: send the header 'Authorization: Bearer <key>' "
            "(the key is the server's MLPILOT_API_KEY).",
        }, [(b"www-authenticate", b"Bearer")])

    def _allowed(self, scope: Scope) -> bool:
        path = scope["path"]
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return True
        return authorized(scope, self._key)


def authorized(scope: Scope, api_key: bytes) -> bool:
    """Whether the request carries ``api_key`` as a bearer token or the UI's login cookie."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), api_key):
                return True
        elif name == b"cookie":
            for part in value.split(b";"):
                key, _, token = part.strip().partition(b"=")
                if key == COOKIE.encode() and hmac.compare_digest(token, api_key):
                    return True
    return False


def route_of(path: str) -> tuple[str, str]:
    """(model, route template) for metrics labels, without unbounded label values."""
    match = _MODEL_ROUTE.match(path)
    if match:
        return match.group(1), "/v1/models/{name}" + (match.group(2) or "")
    match = _UI_ROUTE.match(path)
    if match:
        return match.group(1), "/ui/models/{name}" + ("/..." if match.group(2) else "")
    if path.startswith("/static/"):
        return "", "/static"
    return "", path if len(path) <= 40 and path.count("/") <= 3 else "other"


class MetricsMiddleware:
    """Count requests and time them per model, route and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            model, route = route_of(scope["path"])
            code = int(status["code"])
            if code == 404:
                model, route = "", "unmatched" if not model else route
            self.metrics.observe_request(model, route, scope["method"], code, time.perf_counter() - start)
