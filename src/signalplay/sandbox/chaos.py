"""Chaos for the stand-ins.

A WSGI middleware that answers a seeded random share of requests with a 429 and its Retry-After,
with a 5xx, or too late (it holds the request longer than the client waits, then lets it through:
the write may have happened, which is what makes a retry dangerous). Imports: stdlib.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
HUBSPOT_LIMIT = {
    "status": "error",
    "message": "You have reached your ten_secondly_rolling limit.",
    "errorType": "RATE_LIMIT",
    "correlationId": "00000000-0000-0000-0000-000000000000",
    "policyName": "TEN_SECONDLY_ROLLING",
}
WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
READS_BY_POST = ("/search", "/batch/read", "/oauth2/token")  # POSTs that change nothing


@dataclass(frozen=True)
class Faults:
    """How one API answers when it is over its limit and when it fails.

    Status and JSON body (shared/reference: HubSpot's RATE_LIMIT body, Stripe's `rate_limit`
    envelope, Zendesk's APIRateLimitExceeded; Salesforce has no 429 for its API limits, and
    answers an overloaded instance with 503 SERVER_UNAVAILABLE, a list of errors, without Retry-
    After).
    """

    limit_status: str
    limit_body: Any
    error_status: str
    error_body: Any
    retry_after: bool = True


FAULTS = {
    "hubspot": Faults(
        "429 Too Many Requests",
        HUBSPOT_LIMIT,
        "502 Bad Gateway",
        {"status": "error", "message": "Bad Gateway"},
    ),
    "stripe": Faults(
        "429 Too Many Requests",
        {
            "error": {
                "type": "invalid_request_error",
                "code": "rate_limit",
                "message": "Too many requests hit the API too quickly.",
                "param": None,
                "doc_url": "https://stripe.com/docs/error-codes/rate_limit",
                "request_log_url": None,
            }
        },
        "500 Internal Server Error",
        {"error": {"type": "api_error", "message": "An unexpected error occurred."}},
    ),
    "zendesk": Faults(
        "429 Too Many Requests",
        {"error": "APIRateLimitExceeded", "description": "Rate limit exceeded"},
        "503 Service Unavailable",
        {"error": "ServiceUnavailable", "description": "Service is temporarily unavailable"},
    ),
    "salesforce": Faults(
        "503 Service Unavailable",
        [{"errorCode": "SERVER_UNAVAILABLE", "message": "Server unavailable, try again later"}],
        "500 Server Error",
        [{"errorCode": "UNKNOWN_EXCEPTION", "message": "An unexpected error occurred."}],
        retry_after=False,
    ),
}


class Chaos:
    """Faults at the given rates, by a seeded draw per request.

    Faults at the given rates (10% 429s, 5% 5xx, 2% timeouts by default), by a seeded draw per
    request; `counts` says what was injected.
    """

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
        api: str = "hubspot",
        expire_at: int | None = None,
    ) -> None:
        self.app = app
        self.rng = random.Random(seed)
        self.rates = (rate_limited, server_errors, timeouts)
        self.hang_seconds = hang_seconds
        self.retry_after = retry_after
        self.faults = FAULTS[api]
        self.expire_at = expire_at  # at this request, the session expires (app.expire_session)
        self.counts: Counter[str] = Counter()
        self.writes = 0  # write requests that reached the stand-in and were answered
        self.last_write = ""
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
            if (
                self.enabled
                and self.expire_at is not None
                and self.counts.total() >= self.expire_at
            ):
                self.expire_at = None
                self.app.expire_session()  # type: ignore[attr-defined]
                self.counts["expired_session"] += 1
            return kind

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Answer one request, or fail it."""
        kind = self._draw()
        faults = self.faults
        if kind in ("429", "5xx"):
            limited = kind == "429"
            body = json.dumps(faults.limit_body if limited else faults.error_body).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            if limited and faults.retry_after:
                headers.append(("Retry-After", str(self.retry_after)))
            start_response(faults.limit_status if limited else faults.error_status, headers)
            return [body]
        if kind == "timeout":
            time.sleep(self.hang_seconds)  # the client has given up by now
        answer = self.app(environ, start_response)
        path = str(environ.get("PATH_INFO", ""))
        if environ.get("REQUEST_METHOD") in WRITES and not path.endswith(READS_BY_POST):
            with self._lock:
                self.writes += 1
                self.last_write = f"{environ['REQUEST_METHOD']} {path}"
        return answer
