"""Webhook events through httpx to the loopback receiver: signed, retried on 503 and 429 with
Retry-After, not retried on a refusal, and never delivered twice under one event id."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from signalplay.connectors.webhook import WebhookConnector, WebhookSettings
from signalplay.models import WriteAction, WriteOp
from signalplay.ops.signing import headers, signing_key, verify
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
        assert verify(SECRET, request.content, dict(request.headers), now=time.time()) == "k1"
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
    sent = headers(SECRET, "evt-1", 1_000_000, body)
    assert set(sent) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert sent["webhook-signature"].startswith("v1,")
    assert verify(SECRET, body, sent, now=1_000_100) == "evt-1"
    upper = {k.upper(): v for k, v in sent.items()}  # header names are case-insensitive
    assert verify(SECRET, body, upper, now=1_000_100) == "evt-1"
    assert verify(SECRET, body + b" ", sent, now=1_000_100) is None
    assert verify("other", body, sent, now=1_000_100) is None
    assert verify(SECRET, body, sent, now=1_000_000 + 301) is None  # stale: a replay
    assert verify(SECRET, body, {}, now=1_000_000) is None
    assert verify(SECRET, body, {**sent, "webhook-timestamp": "x"}, now=1_000_000) is None
    # the id is signed: a captured request replayed under a new id is refused
    assert verify(SECRET, body, {**sent, "webhook-id": "evt-2"}, now=1_000_100) is None
    # a sender rotating its secret signs with both; either verifies
    both = f"v1,bm90LXRoaXM= {sent['webhook-signature']}"
    assert verify(SECRET, body, {**sent, "webhook-signature": both}, now=1_000_100) == "evt-1"


@pytest.mark.parametrize("secret", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "plain-secret"])
def test_receivers_verify_with_the_standard_webhooks_library(secret: str) -> None:
    from standardwebhooks import Webhook

    body = b'{"event":"in_app_guidance","n":1}'
    sent = headers(secret, "evt-9", int(time.time()), body)
    key = secret if secret.startswith("whsec_") else secret.encode()
    assert Webhook(key).verify(body, sent) == {"event": "in_app_guidance", "n": 1}
    forged = {**sent, "webhook-id": "evt-10"}
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(key).verify(body, forged)
    # and what the library signs, signalplay's receiver accepts
    stamp = datetime.fromtimestamp(int(sent["webhook-timestamp"]), tz=UTC)
    theirs = Webhook(key).sign("evt-9", stamp, body.decode())
    assert theirs == sent["webhook-signature"]
    assert signing_key(secret) == (
        base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else key
    )


def test_the_receiver_refuses_a_replay_under_a_new_id() -> None:
    receiver = WebhookReceiver(SECRET)
    with serve(receiver) as server:
        conn = WebhookConnector(
            WebhookSettings(url=f"{server.url}/events", secret=SecretStr(SECRET)),
            sleep=lambda s: None,
        )
        (result,) = conn.send([op("k1")])
        conn.close()
        assert result.ok
        body = json.dumps(op("k1").values, sort_keys=True, separators=(",", ":")).encode()
        sent = headers(SECRET, "k1", int(time.time()), body)
        again = httpx.post(f"{server.url}/events", content=body, headers=sent)
        replayed = httpx.post(
            f"{server.url}/events", content=body, headers={**sent, "webhook-id": "k1-new"}
        )
    assert again.status_code == 200  # a redelivery of a seen id: acknowledged, not counted
    assert replayed.status_code == 401
    assert [e["id"] for e in receiver.events] == ["k1"]
    assert (receiver.duplicates, receiver.rejected) == (1, 1)


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
