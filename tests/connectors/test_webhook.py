"""Webhook events through httpx to the loopback receiver: signed, retried on 503 and 429 with
Retry-After, not retried on a refusal, and never delivered twice under one event id."""

from __future__ import annotations

import time

import httpx
import pytest
from pydantic import SecretStr

from signalplay.connectors.webhook import WebhookConnector, WebhookSettings
from signalplay.models import WriteAction, WriteOp
from signalplay.ops.signing import sign, verify
from signalplay.sandbox.server import serve
from signalplay.sandbox.webhook import WebhookReceiver

SECRET = "whsec-unit"


def op(key: str, event: str = "in_app_guidance") -> WriteOp:
    return WriteOp(
        op_key=key,
        action=WriteAction.SEND_WEBHOOK,
        object_type="events",
        target=key,
        values={"event": event, "recipients": [{"contact_id": "c1", "role": "admin"}]},
        reason="test",
    )


@pytest.fixture
def receiver() -> WebhookReceiver:
    return WebhookReceiver(SECRET)


@pytest.fixture
def connector(receiver: WebhookReceiver):
    waits: list[float] = []
    with serve(receiver) as server:
        conn = WebhookConnector(
            WebhookSettings(url=f"{server.url}/events", secret=SecretStr(SECRET)),
            sleep=waits.append,
        )
        conn.waits = waits  # type: ignore[attr-defined]
        yield conn
        conn.close()


def test_events_arrive_signed_once_each(
    connector: WebhookConnector, receiver: WebhookReceiver
) -> None:
    results = connector.send([op("k1"), op("k2", "webinar_invite")])
    assert [r.ok for r in results] == [True, True]
    assert [e["id"] for e in receiver.events] == ["k1", "k2"]
    assert receiver.events[1]["event"] == "webinar_invite"
    assert receiver.rejected == 0


def test_a_redelivered_event_is_dropped_by_id(
    connector: WebhookConnector, receiver: WebhookReceiver
) -> None:
    connector.send([op("k1")])
    connector.send([op("k1")])
    assert len(receiver.events) == 1
    assert receiver.duplicates == 1


def test_503_then_429_are_retried_honouring_retry_after(
    connector: WebhookConnector, receiver: WebhookReceiver
) -> None:
    receiver.fail_next(1, status=503)
    receiver.fail_next(1, status=429, retry_after="7")
    (result,) = connector.send([op("k1")])
    assert result.ok
    assert receiver.requests == 3
    assert len(connector.waits) == 2  # type: ignore[attr-defined]
    assert connector.waits[1] >= 7  # type: ignore[attr-defined]


def test_giving_up_leaves_a_retriable_failure(
    connector: WebhookConnector, receiver: WebhookReceiver
) -> None:
    receiver.fail_next(10, status=503)
    (result,) = connector.send([op("k1")])
    assert not result.ok
    assert result.retriable
    assert "HTTP 503" in (result.error or "")
    assert receiver.requests == 5


def test_a_wrong_secret_is_refused_and_not_retried(receiver: WebhookReceiver) -> None:
    with serve(receiver) as server:
        conn = WebhookConnector(
            WebhookSettings(url=f"{server.url}/events", secret=SecretStr("wrong")),
            sleep=lambda s: None,
        )
        (result,) = conn.send([op("k1")])
        conn.close()
    assert not result.ok
    assert not result.retriable
    assert "HTTP 401" in (result.error or "")
    assert receiver.requests == 1
    assert receiver.events == []


def test_timeouts_are_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            raise httpx.ReadTimeout("slow", request=request)
        assert verify(
            SECRET, request.content, request.headers["Signalplay-Signature"], now=time.time()
        )
        return httpx.Response(204)

    conn = WebhookConnector(
        WebhookSettings(url="https://hooks.example/events", secret=SecretStr(SECRET)),
        transport=httpx.MockTransport(handler),
        sleep=lambda s: None,
    )
    (result,) = conn.send([op("k1")])
    assert result.ok
    assert len(calls) == 3


def test_signature_checks() -> None:
    body = b'{"a":1}'
    header = sign(SECRET, body, 1_000_000)
    assert verify(SECRET, body, header, now=1_000_100)
    assert not verify(SECRET, body + b" ", header, now=1_000_100)
    assert not verify("other", body, header, now=1_000_100)
    assert not verify(SECRET, body, header, now=1_000_000 + 301)  # stale: a replay
    assert not verify(SECRET, body, None, now=1_000_000)
    assert not verify(SECRET, body, "t=x,v1=y", now=1_000_000)


def test_the_secret_never_shows_in_settings_repr() -> None:
    settings = WebhookSettings(url="https://hooks.example/e", secret=SecretStr(SECRET))
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


def test_an_unreachable_endpoint_is_tried_once_per_run() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("refused", request=request)

    conn = WebhookConnector(
        WebhookSettings(url="https://hooks.example/events", secret=SecretStr(SECRET), attempts=3),
        transport=httpx.MockTransport(handler),
        sleep=lambda s: None,
    )
    results = conn.send([op("k1"), op("k2"), op("k3")])
    assert [r.ok for r in results] == [False, False, False]
    assert all(r.retriable for r in results)
    assert len(calls) == 3  # the first event's attempts only
    assert "not attempted" in (results[2].error or "")
