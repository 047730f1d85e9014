"""The HQ API over HTTP: bearer token, timeouts, and HQ's error bodies as ``HqCliError``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from aggregator.hq_cli.errors import (
    EXIT_DENIED,
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    HqCliError,
)
from aggregator.hq_cli.target import TOKEN_ENV, URL_ENV, HqTarget

EXIT_BY_STATUS = {401: EXIT_DENIED, 403: EXIT_DENIED, 404: EXIT_NOT_FOUND, 410: EXIT_NOT_FOUND}
HINT_BY_STATUS = {
    401: f"check the token (${TOKEN_ENV} or the config file)",
    403: "ask an HQ admin for a token with this role or site",
}
CHUNK = 64 * 1024


class HqClient:
    """One connection to HQ; every call answers decoded JSON or raises ``HqCliError``."""

    def __init__(self, target: HqTarget, transport: httpx.BaseTransport | None = None) -> None:
        self._target = target
        self._http = httpx.Client(
            base_url=target.url,
            headers={"Authorization": f"Bearer {target.token}", "Accept": "application/json"},
            timeout=target.timeout_s,
            transport=transport,
        )

    def __enter__(self) -> HqClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` with the parameters that are not None."""
        return self.call("GET", path, params=params)

    def call(
        self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        """Send one request and decode its JSON answer."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        with self._guard():
            answer = self._http.request(method, path, params=query, json=body)
        _check(answer)
        try:
            return answer.json()
        except ValueError:
            raise HqCliError("bad-answer", f"HQ answered {path} with something not JSON") from None

    def download(self, path: str, out: Path, progress: Callable[[int, int | None], None]) -> str:
        """Stream ``path`` into ``out`` and check HQ's SHA-256; the digest."""
        digest = hashlib.sha256()
        partial = out.with_name(out.name + ".part")
        try:
            with self._guard(), self._http.stream("GET", path) as answer:
                _check(answer)
                size = answer.headers.get("Content-Length")
                total = int(size) if size and size.isdigit() else None
                with partial.open("wb") as sink:
                    for chunk in answer.iter_bytes(CHUNK):
                        sink.write(chunk)
                        digest.update(chunk)
                        progress(sink.tell(), total)
                expected = answer.headers.get("X-Content-SHA256")
            if expected and expected != digest.hexdigest():
                raise HqCliError("checksum-mismatch", f"{path} arrived damaged; nothing was kept")
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(out)
        return digest.hexdigest()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException:
            raise HqCliError(
                "hq-timeout",
                f"HQ at {self._target.url} did not answer in {self._target.timeout_s:g}s",
                EXIT_UNREACHABLE,
                hint="raise timeout_s in the config file, or narrow the query",
            ) from None
        except httpx.TransportError as err:
            raise HqCliError(
                "hq-unreachable",
                f"cannot reach HQ at {self._target.url}: {err}",
                EXIT_UNREACHABLE,
                hint=f"check --url or ${URL_ENV} and that the aggregator runs",
            ) from None


def _check(answer: httpx.Response) -> None:
    if answer.is_success:
        return
    answer.read()
    status = answer.status_code
    body = _error_body(answer)
    error_id = str(body.get("error_id") or f"http-{status}")
    message = str(body.get("message") or answer.reason_phrase or "HQ refused the request")
    details = body.get("details") if isinstance(body.get("details"), dict) else {}
    code = EXIT_BY_STATUS.get(status, EXIT_USAGE if status in (400, 422) else EXIT_FAILURE)
    raise HqCliError(error_id, message, code, HINT_BY_STATUS.get(status, ""), details)


def _error_body(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
