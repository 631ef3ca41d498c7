"""What `serve` checks before and around every request: bind address, key, Host, body size.

The guard is one ASGI middleware, so every route (the three APIs, /props, /docs, /tokenize)
gets the same checks, and a refusal has the shape of the API the client speaks.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from gemma_code.errors import UsageError

MIN_KEY_LENGTH = 16
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 or ::1; names other than localhost count as public."""
    if host.lower() in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None, api_key_env: str) -> None:
    """Refuse to serve beyond this machine without an API key, or with a guessable one."""
    if api_key is not None and len(api_key) < MIN_KEY_LENGTH:
        raise UsageError(
            f"the API key in ${api_key_env} is {len(api_key)} characters; at least "
            f"{MIN_KEY_LENGTH} are needed",
            f"export {api_key_env}=$(openssl rand -hex 24)",
        )
    if api_key or is_loopback(host):
        return
    raise UsageError(
        f"refusing to serve on {host} without an API key: anyone who can reach it could use the model",
        f"export {api_key_env}=$(openssl rand -hex 24) and run again (clients send the same "
        f"variable), or keep the default --host 127.0.0.1",
    )


def check_port_free(host: str, port: int) -> None:
    """Fail before the slow model load when the address is taken or not ours to bind."""
    import socket

    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                "choose another --port, stop the program using it, or fix --host",
            ) from None


def error_body(path: str, status: int, message: str, kind: str = "") -> dict[str, Any]:
    """An error in the shape of the API at `path` (Anthropic's for /v1/messages)."""
    if path.startswith("/v1/messages"):
        types = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error"}
        return {"type": "error",
                "error": {"type": kind or types.get(status, "api_error"), "message": message}}
    types = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
             413: "invalid_request_error"}
    return {"error": {"message": message, "type": kind or types.get(status, "invalid_request_error"),
                      "param": None, "code": None}}


@dataclass
class Guard:
    """Settings of the guard middleware."""

    api_key: str | None = None
    max_body: int = 32 << 20
    bind_host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    host_names: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.host_names = {h.lower().strip("[]") for h in self.allowed_hosts if h}
        if not is_loopback(self.bind_host) and self.bind_host not in ("0.0.0.0", "::", ""):
            self.host_names.add(self.bind_host.lower().strip("[]"))

    def host_ok(self, host_header: str) -> bool:
        """Loopback names always; others only when named, or when bound to every address."""
        name = host_header.strip().lower()
        if name.startswith("["):
            name = name[1 : name.find("]")] if "]" in name else name
        elif name.count(":") == 1:
            name = name.split(":", 1)[0]
        if not name:
            return False
        if is_loopback(name) or name in self.host_names:
            return True
        # bound to all interfaces with a key: clients use any of this machine's names
        return self.bind_host in ("0.0.0.0", "::") and self.api_key is not None

    def key_ok(self, headers: dict[str, str]) -> bool:
        if self.api_key is None:
            return True
        sent = headers.get("x-api-key", "")
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            sent = sent or auth[7:].strip()
        return hmac.compare_digest(sent.encode(), self.api_key.encode())


def guard_middleware(app: App, guard: Guard) -> App:
    """Wrap `app`: CORS only for configured origins, Host check, key check, body size limit."""

    async def refuse(send: Send, path: str, status: int, message: str,
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:
        body = json.dumps(error_body(path, status, message)).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            *(extra or []),
        ]})
        await send({"type": "http.response.body", "body": body})

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = str(scope.get("path", ""))
        origin = headers.get("origin")
        cors: list[tuple[bytes, bytes]] = []
        if origin and origin in guard.cors_origins:
            cors = [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin")]
        if scope["method"] == "OPTIONS" and cors:
            await send({"type": "http.response.start", "status": 204, "headers": [
                *cors, (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                (b"access-control-allow-headers",
                 b"authorization, content-type, x-api-key, anthropic-version, openai-beta"),
                (b"access-control-max-age", b"600"),
            ]})
            await send({"type": "http.response.body", "body": b""})
            return
        if not guard.host_ok(headers.get("host", "")):
            await refuse(send, path, 403, "this server answers only requests addressed to it by "
                         "a loopback name; add the name to serve_allowed_hosts")
            return
        if not guard.key_ok(headers):
            await refuse(send, path, 401, "missing or wrong API key: send it as "
                         "'Authorization: Bearer KEY' or 'x-api-key: KEY'",
                         [(b"www-authenticate", b"Bearer")])
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > guard.max_body:
            # read (and drop) a moderately large body first, so the client can read the answer
            # instead of failing on a closed socket; a huge one is cut off at once
            drained = 0
            while int(declared) <= 4 * guard.max_body and drained <= int(declared):
                message = await receive()
                drained += len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
            await refuse(send, path, 413, f"request body over {guard.max_body >> 20} MiB")
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > guard.max_body:
                    raise BodyTooLarge
            return message

        started = False

        async def send_with_cors(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if cors:
                    message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        try:
            await app(scope, limited_receive, send_with_cors)
        except BodyTooLarge:
            if not started:
                await refuse(send, path, 413, f"request body over {guard.max_body >> 20} MiB")

    return guarded


class BodyTooLarge(Exception):
    """A chunked body grew past the limit while it was read."""
