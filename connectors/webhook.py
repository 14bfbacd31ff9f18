"""Outbound webhook events for the team's messaging tool, over httpx.

Outbound webhook events for the team's messaging tool (in-app guidance, webinar invitations), on
httpx: one signed POST per event (see signalplay.ops.signing), retried on 429, 5xx and timeouts with
the one retry policy.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from signalplay.connectors._retry import call_with_retry, parse_retry_after
from signalplay.errors import FatalError, RetriableError, SyncError
from signalplay.models import WriteAction, WriteOp, WriteResult
from signalplay.ops import signing


class WebhookSettings(BaseModel):
    """Where events go and the shared secret they are signed with (from the environment)."""

    model_config = ConfigDict(extra="forbid")

    connector: str = "webhook"
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr
    timeout: float = Field(default=10.0, gt=0, le=120)
    attempts: int = Field(default=5, ge=1, le=10)


class WebhookConnector:
    """Delivers SEND_WEBHOOK ops; one result per op, a failure never raises."""

    settings_model: ClassVar[type[BaseModel]] = WebhookSettings

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        source: str = "webhook",
        root: object = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.source = source
        self._client = httpx.Client(timeout=settings.timeout, transport=transport, trust_env=False)
        self._sleep = sleep
        self._clock = clock

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def send(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """POST each event; retried on transient failures, recorded per op.

        When the endpoint cannot be reached at all, the events after the first are not
        attempted this run.
        """
        results = []
        unreachable: str | None = None
        for op in ops:
            if op.action is not WriteAction.SEND_WEBHOOK:
                results.append(
                    WriteResult(op_key=op.op_key, ok=False, error=f"not an event: {op.action}")
                )
                continue
            if unreachable is not None:
                results.append(
                    WriteResult(op_key=op.op_key, ok=False, error=unreachable, retriable=True)
                )
                continue
            try:
                status = call_with_retry(
                    functools.partial(self._post, op),
                    attempts=self.settings.attempts,
                    sleep=self._sleep,
                )
                results.append(WriteResult(op_key=op.op_key, ok=True, crm_id=str(status)))
            except SyncError as exc:
                retriable = isinstance(exc, RetriableError)
                results.append(
                    WriteResult(op_key=op.op_key, ok=False, error=str(exc), retriable=retriable)
                )
                if retriable and exc.status is None:
                    unreachable = f"not attempted: the endpoint was unreachable ({exc.message})"
        return results

    def _post(self, op: WriteOp) -> int:
        body = json.dumps(op.values, sort_keys=True, separators=(",", ":")).encode()
        stamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            **signing.headers(self.settings.secret.get_secret_value(), op.op_key, stamp, body),
        }
        event = str(op.values.get("event") or "event")
        try:
            resp = self._client.post(self.settings.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise RetriableError(self.source, f"send {event}", f"timed out: {exc}") from None
        except httpx.TransportError as exc:
            raise RetriableError(self.source, f"send {event}", f"transport: {exc}") from None
        return _check(self.source, event, resp)


def _check(source: str, event: str, resp: httpx.Response) -> int:
    if resp.is_success:
        return resp.status_code
    message = _short(resp)
    if resp.status_code == 429 or resp.status_code >= 500:
        raise RetriableError(
            source,
            f"send {event}",
            message,
            status=resp.status_code,
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
        )
    raise FatalError(source, f"send {event}", message, status=resp.status_code)


def _short(resp: httpx.Response) -> str:
    text: Any = resp.text[:200]
    return str(text) or resp.reason_phrase
