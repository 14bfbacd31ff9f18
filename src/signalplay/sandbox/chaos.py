"""Chaos for the stand-ins: a WSGI middleware that answers a seeded random share of requests
with a 429 and its Retry-After, with a 5xx, or too late (it holds the request longer than the
client waits, then lets it through: the write may have happened, which is what makes a retry
dangerous). Imports: stdlib.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
HUBSPOT_LIMIT = {
    "status": "error",
    "message": "You have reached your ten_secondly_rolling limit.",
    "errorType": "RATE_LIMIT",
    "correlationId": "00000000-0000-0000-0000-000000000000",
    "policyName": "TEN_SECONDLY_ROLLING",
}


class Chaos:
    """Faults at the given rates (10% 429s, 5% 5xx, 2% timeouts by default), by a seeded draw
    per request; `counts` says what was injected."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        seed: int,
        rate_limited: float = 0.10,
        server_errors: float = 0.05,
        timeouts: float = 0.02,
        hang_seconds: float = 1.5,
        retry_after: int = 1,
        limit_body: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.rng = random.Random(seed)
        self.rates = (rate_limited, server_errors, timeouts)
        self.hang_seconds = hang_seconds
        self.retry_after = retry_after
        self.limit_body = limit_body or HUBSPOT_LIMIT
        self.counts: Counter[str] = Counter()
        self.enabled = True
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # the stand-in's own helpers stay reachable

    def _draw(self) -> str:
        with self._lock:
            roll = self.rng.random()
            limited, errors, slow = self.rates
            if not self.enabled:
                kind = "passed"
            elif roll < limited:
                kind = "429"
            elif roll < limited + errors:
                kind = "5xx"
            elif roll < limited + errors + slow:
                kind = "timeout"
            else:
                kind = "passed"
            self.counts[kind] += 1
            return kind

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Answer one request, or fail it."""
        kind = self._draw()
        if kind == "429":
            body = json.dumps(self.limit_body).encode()
            start_response(
                "429 Too Many Requests",
                [
                    ("Content-Type", "application/json"),
                    ("Retry-After", str(self.retry_after)),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [body]
        if kind == "5xx":
            body = json.dumps({"status": "error", "message": "Bad Gateway"}).encode()
            start_response(
                "502 Bad Gateway",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if kind == "timeout":
            time.sleep(self.hang_seconds)  # the client has given up by now
        return self.app(environ, start_response)
