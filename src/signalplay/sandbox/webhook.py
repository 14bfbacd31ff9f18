"""A loopback receiver of signalplay's webhook events, as a messaging tool's endpoint behaves.

It checks the signature (401 when wrong, stale or missing), drops a redelivered event id (200), and
can be told to fail the next N requests with 503 or 429 + Retry-After, to test retries.

Imports: stdlib, signing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from signalplay.ops.signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


def _header(environ: dict[str, Any], name: str) -> str | None:
    value = environ.get("HTTP_" + name.upper().replace("-", "_"))
    return None if value is None else str(value)


class WebhookReceiver:
    """The receiving end: verified events in arrival order, duplicates counted."""

    def __init__(self, secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.clock = clock
        self.events: list[dict[str, Any]] = []
        self.seen: set[str] = set()
        self.duplicates = 0
        self.rejected = 0
        self.requests = 0
        self._failures: list[tuple[int, str | None]] = []
        self._lock = threading.Lock()

    def fail_next(self, count: int, *, status: int = 503, retry_after: str | None = None) -> None:
        """Answer the next `count` requests with `status` (and Retry-After, if given)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """WSGI entry point."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        with self._lock:
            self.requests += 1
            if self._failures:
                status, retry_after = self._failures.pop(0)
                headers = [("Content-Type", "application/json")]
                if retry_after is not None:
                    headers.append(("Retry-After", retry_after))
                start_response(f"{status} Unavailable", headers)
                return [b'{"error":"temporarily unavailable"}']
            received = {
                name: value
                for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
                if (value := _header(environ, name)) is not None
            }
            event_id = verify(self.secret, body, received, now=self.clock())
            if environ.get("REQUEST_METHOD") != "POST" or event_id is None:
                self.rejected += 1
                start_response("401 Unauthorized", [("Content-Type", "application/json")])
                return [b'{"error":"invalid signature"}']
            if event_id in self.seen:  # a redelivery (or a replay) of a seen id: not again
                self.duplicates += 1
            else:
                self.seen.add(event_id)
                self.events.append({"id": event_id, **json.loads(body or b"{}")})
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"received":true}']
