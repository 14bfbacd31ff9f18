"""Signatures of outbound webhook events, by the Standard Webhooks specification.

Three headers (https://www.standardwebhooks.com/): `webhook-id` (the event's stable key, the same
on every retry, so a receiver drops a redelivery), `webhook-timestamp` (unix seconds of this
attempt) and `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`. The id is
signed, so a captured request cannot be replayed as a new event; the timestamp bounds a replay of
the same one to the tolerance. A receiver verifies with any Standard Webhooks library: with the
secret itself when it is in the spec's `whsec_<base64>` form, with its UTF-8 bytes otherwise.

Imports: stdlib.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"  # noqa: S105 - the form of a secret, not one


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: `whsec_<base64>` decoded, any other secret's UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        body = secret[len(SECRET_PREFIX) :]
        try:
            return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: its bytes, as for any other secret
    return secret.encode()


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for `body`, sent as `event_id` at `timestamp`."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    mac = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(mac).decode()}"


def headers(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one delivery attempt."""
    return {
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, event_id, timestamp, body),
    }


def verify(
    secret: str,
    body: bytes,
    received: Mapping[str, str],
    *,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> str | None:
    """The event id when `received` headers sign `body` within `tolerance` of `now`, else None.

    Header names are matched case-insensitively; any of the space-separated `v1,` signatures
    may match (a sender rotating its secret signs with both).
    """
    lower = {k.lower(): v for k, v in received.items()}
    event_id = lower.get(ID_HEADER)
    stamp = lower.get(TIMESTAMP_HEADER)
    signatures = lower.get(SIGNATURE_HEADER)
    if not (event_id and stamp and signatures):
        return None
    try:
        timestamp = int(stamp)
    except ValueError:
        return None
    if abs(now - timestamp) > tolerance:
        return None
    expected = sign(secret, event_id, timestamp, body).split(",", 1)[1]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(expected, value):
            return event_id
    return None
