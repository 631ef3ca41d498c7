"""HTTP for OpenAI-compatible servers: JSON requests, bounded retries, SSE, one-line errors.

Standard library only (http.client), so the `openai` package is not needed.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gemma_code.errors import ConfigError, EngineError, GemmaCodeError, ModelNotFoundError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_WAIT_S = 30.0
CONNECT_TIMEOUT_S = 30.0  # a Retry-After beyond this is capped: we would rather fail than hang

START_HINT = (
    "start the server (`gemma-code serve`, `llama-server`, `vllm serve` or `ollama serve`) "
    "or point --base-url at a running one"
)


class HttpStatusError(EngineError):
    """The server answered with an error status that is not otherwise mapped."""

    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


def server_message(body: bytes) -> str:
    """The human part of an error body: OpenAI's {"error": {"message"}}, FastAPI's
    {"detail"}, or the raw text, cut to one line."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            text = err if isinstance(err, str) else json.dumps(err)
    line = " ".join(text.split())
    return line[:300] + ("..." if len(line) > 300 else "")


def iter_sse(lines: Iterable[bytes]) -> Iterator[str]:
    """The `data` payload of each server-sent event; comments and other fields are skipped."""
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue  # a comment, e.g. a keep-alive ping
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def retry_after_s(value: str | None, attempt: int, backoff_s: float) -> float:
    """Seconds to wait before retry `attempt` (0-based): Retry-After when given, else
    exponential backoff; capped either way."""
    if value:
        try:
            return min(max(float(value), 0.0), MAX_RETRY_WAIT_S)
        except ValueError:
            pass  # an HTTP date: fall back to our own backoff
    return float(min(backoff_s * (2**attempt), MAX_RETRY_WAIT_S))


@dataclass
class HttpClient:
    """Talks JSON to one server: `base_url` like http://host:8080/v1."""

    base_url: str
    api_key: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 600.0
    retries: int = 3
    backoff_s: float = 0.5
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url.rstrip("/"))
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigError(
                f"base_url {self.base_url!r} is not an http(s) URL",
                "use e.g. --base-url http://127.0.0.1:8080/v1",
            )
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        # the server's root, where llama-server and vLLM put /tokenize and /props
        self.root_prefix = self._prefix[:-3] if self._prefix.endswith("/v1") else self._prefix

    def url(self, path: str, *, root: bool = False) -> str:
        """The full URL of `path` under the base URL (or under the server root)."""
        port = f":{self._port}" if self._port else ""
        prefix = self.root_prefix if root else self._prefix
        return f"{self._scheme}://{self._host}{port}{prefix}{path}"

    def _connect(self) -> http.client.HTTPConnection:
        """A connected socket: a host that never answers fails within CONNECT_TIMEOUT_S, while
        reads may wait the full request timeout (a long prefill sends nothing for a while)."""
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=min(self.timeout_s, CONNECT_TIMEOUT_S))
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise EngineError(
                f"cannot connect to {self.base_url}: no answer within "
                f"{min(self.timeout_s, CONNECT_TIMEOUT_S):g} s",
                "check the host and port, and that a firewall lets you through; " + START_HINT,
            ) from None
        except BaseException:
            conn.close()
            raise
        if conn.sock is not None:
            conn.sock.settimeout(self.timeout_s)
        return conn

    def _headers(self, body: bool) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream", "User-Agent": "gemma-code"}
        if body:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def open(
        self, method: str, path: str, payload: Any = None, *, root: bool = False,
        check: bool = True,
    ) -> http.client.HTTPResponse:
        """Send a request, retrying 429 and 5xx with backoff; the response is left unread.

        With `check`, error statuses raise one-line GemmaCodeErrors; else they are returned.
        """
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        full = self.url(path, root=root)
        target = (self.root_prefix if root else self._prefix) + path
        attempt = 0
        while True:
            conn: http.client.HTTPConnection | None = None
            try:
                conn = self._connect()
                conn.request(method, target, body=body, headers=self._headers(body is not None))
                response = conn.getresponse()
            except ConnectionRefusedError:
                _close(conn)
                raise EngineError(
                    f"cannot connect to {self.base_url}: connection refused",
                    START_HINT,
                ) from None
            except TimeoutError:
                _close(conn)
                raise self._timeout(full) from None
            except (OSError, http.client.HTTPException) as exc:
                _close(conn)
                raise EngineError(f"request to {full} failed: {exc}", START_HINT) from None
            if response.status in RETRY_STATUSES and attempt < self.retries:
                wait = retry_after_s(response.getheader("Retry-After"), attempt, self.backoff_s)
                response.read()
                conn.close()
                self.sleep(wait)
                attempt += 1
                continue
            if check and response.status >= 400:
                try:
                    text = response.read()
                except (TimeoutError, OSError):
                    text = b""
                conn.close()
                raise self.status_error(response.status, text, full, attempts=attempt + 1)
            return response

    def json(self, method: str, path: str, payload: Any = None, *, root: bool = False) -> Any:
        """Send a request and decode its JSON answer."""
        response = self.open(method, path, payload, root=root)
        try:
            raw = response.read()
        except TimeoutError:
            raise self._timeout(self.url(path, root=root)) from None
        finally:
            response.close()
        try:
            return json.loads(raw)
        except ValueError:
            raise EngineError(
                f"{self.url(path, root=root)} did not answer with JSON", START_HINT
            ) from None

    def _timeout(self, url: str) -> EngineError:
        return EngineError(
            f"{url} did not answer within {self.timeout_s:g} s (timeout)",
            "the server may be overloaded or still loading; raise `request_timeout` "
            "(GEMMA_CODE_REQUEST_TIMEOUT) or check the server",
        )

    def timeout_error(self, url: str) -> EngineError:
        """The error for a read that timed out mid-stream."""
        return self._timeout(url)

    def status_error(
        self, status: int, body: bytes, url: str, *, attempts: int = 1
    ) -> GemmaCodeError:
        """Map an HTTP error status to a one-line error with a hint."""
        said = server_message(body) or f"HTTP {status}"
        if status in (401, 403):
            sent = (
                f"the key from ${self.api_key_env} was sent" if self.api_key
                else f"no key was sent (${self.api_key_env} is not set)"
            )
            return ConfigError(
                f"{url} refused the API key (HTTP {status}: {said}); {sent}",
                f"export {self.api_key_env}=<the server's key>, or name another variable "
                "with `api_key_env`",
            )
        if status == 404:
            return ModelNotFoundError(
                f"{url}: not found (HTTP 404: {said})",
                f"`curl {self.url('/models')}` lists the served models; choose one with "
                "--model or `openai_model`, and check --base-url (it usually ends in /v1)",
            )
        if status in RETRY_STATUSES:
            return HttpStatusError(
                status,
                f"{url} failed with HTTP {status} after {attempts} attempt(s): {said}",
                "the server is overloaded or failing; try again later or check its log",
            )
        return HttpStatusError(status, f"{url}: HTTP {status}: {said}")


def _close(conn: http.client.HTTPConnection | None) -> None:
    if conn is not None:
        conn.close()
