"""HubSpot's wire.

Settings, vendor limits, the error classification, and the helpers that shape its payloads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr
from urllib3.exceptions import HTTPError as Urllib3Error

from signalplay.connectors._http import connect_reason
from signalplay.connectors._ratelimit import (
    RateLimitSettings,
    Window,
)
from signalplay.connectors._retry import parse_retry_after
from signalplay.errors import (
    AuthError,
    FatalError,
    RateLimitedError,
    RetriableError,
    SyncError,
    UnreachableError,
)
from signalplay.models import (
    WriteOp,
)

log = logging.getLogger(__name__)
HTTP_CONFLICT = 409
T = TypeVar("T")

BATCH_CAP = 100  # inputs per batch call (developers.hubspot.com/docs/api/crm/understanding-the-crm)
PAGE_CAP = 100  # results per list page
ASSOC_READ_CAP = 1000  # inputs per v4 association batch read (changelog, 2025-02-10)
HISTORY_PAGE_CAP = 50  # results per list page with propertiesWithHistory (a larger one is a 400)
URL_BUDGET = 12_000  # characters of property names per GET; HubSpot answers 414 near 16k
TASK_TO = {"companies": 192, "contacts": 204, "deals": 216}  # HUBSPOT_DEFINED association type ids
PRIORITY = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH", "urgent": "HIGH"}


class HubSpotSettings(BaseModel):
    """The `crm:` block for HubSpot; the token comes from SIGNALPLAY_CRM__ACCESS_TOKEN."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connector: str = "hubspot"
    host: str = "https://api.hubapi.com"
    access_token: SecretStr
    episode_key_property: str = "signalplay_episode_key"
    closure_reason_property: str = "signalplay_closure_reason"
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_retry_seconds: float = 60.0
    # Free/Starter private apps: 100 requests per 10 s and 250k a day (raise for Pro/Enterprise).
    rate_limit: RateLimitSettings = RateLimitSettings(
        windows=(Window(limit=100, seconds=10), Window(limit=250_000, seconds=86_400))
    )


def _no_connection(cause: BaseException) -> bool:
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    return isinstance(cause, NewConnectionError | NameResolutionError | ConnectionRefusedError)


def classify(exc: Exception, operation: str) -> SyncError:
    """One error class for every SDK sub-package's ApiException and urllib3's failures."""
    status = getattr(exc, "status", None)
    if isinstance(exc, Urllib3Error) or status == 0:
        pool = getattr(exc, "pool", None)
        cause = getattr(exc, "reason", None) or exc
        if pool is not None and _no_connection(cause):
            where = f"{pool.scheme}://{pool.host}:{pool.port}"
            return UnreachableError("hubspot", operation, where, connect_reason(cause))
        return RetriableError("hubspot", operation, f"connection failed: {type(exc).__name__}")
    headers = getattr(exc, "headers", None) or {}
    body = str(getattr(exc, "body", "") or "")[:500]
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    message = parsed.get("message", body) if isinstance(parsed, dict) else body
    request_id = parsed.get("correlationId") if isinstance(parsed, dict) else None
    if status == 429 and isinstance(parsed, dict) and parsed.get("policyName") == "DAILY":
        # The day's quota is spent: waiting minutes will not help. Stop; the next run resumes.
        return RateLimitedError("hubspot", operation, message, status=status, request_id=request_id)
    if status == 429 or (isinstance(status, int) and status >= 500):
        retry_after = parse_retry_after(headers.get("Retry-After"))
        return RetriableError(
            "hubspot",
            operation,
            message,
            status=status,
            request_id=request_id,
            retry_after=retry_after,
        )
    if status in (401, 403):
        return AuthError("hubspot", operation, message, status=status, request_id=request_id)
    return FatalError("hubspot", operation, message, status=status, request_id=request_id)


def _translate(exc: Exception, operation: str) -> SyncError | None:
    """An SDK ApiException (it has a status) or a urllib3 failure; anything else is ours."""
    if not hasattr(exc, "status") and not isinstance(exc, Urllib3Error):
        return None
    return classify(exc, operation)


def _errors_by_id(answer: Mapping[str, Any]) -> dict[str, str]:
    """Per-input errors of a 207 answer (its JSON), keyed by the input id they name."""
    out: dict[str, str] = {}
    for err in answer.get("errors") or []:
        context = err.get("context") or {}
        for rid in context.get("ids", []) or context.get("fromId", []):
            out[str(rid)] = f"{err.get('category', '')}: {err.get('message', '')}"[:500]
    return out


SEARCH_PAGE = 200  # results per search page
SEARCH_CAP = 10_000  # results one search query can page through


def _parse_iso(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


OBJECT_TYPES = {"account": "companies", "task": "tasks"}
# signalplay's field kinds as HubSpot (type, fieldType).
HUBSPOT_KINDS = {
    "number": ("number", "number"),
    "text": ("string", "text"),
    "textarea": ("string", "textarea"),
    "picklist": ("enumeration", "select"),
    "date": ("date", "date"),
    "datetime": ("datetime", "date"),
    "boolean": ("bool", "booleancheckbox"),
}


def _hubspot_kind(ptype: str, field_type: str) -> str:
    if ptype == "enumeration" and field_type == "booleancheckbox":
        return "boolean"
    if ptype == "string":
        return "textarea" if field_type == "textarea" else "text"
    return {"enumeration": "picklist", "bool": "boolean"}.get(ptype, ptype)


def _options(values: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"label": v.replace("_", " ").capitalize(), "value": v, "displayOrder": i, "hidden": False}
        for i, v in enumerate(values)
    ]


def _is_404(exc: SyncError) -> bool:
    return exc.status == 404


def _task_properties(op: WriteOp) -> dict[str, str]:
    values = op.values
    props = {
        "hs_timestamp": str(values.get("due_at") or ""),
        "hs_task_subject": str(values.get("subject") or ""),
        "hs_task_body": str(values.get("body") or ""),
        "hs_task_priority": PRIORITY.get(str(values.get("priority")), "MEDIUM"),
        "hs_task_type": str(values.get("type") or "TODO"),
    }
    if values.get("status") == "open":
        props["hs_task_status"] = "NOT_STARTED"
    if values.get("owner_id"):
        props["hubspot_owner_id"] = str(values["owner_id"])
    return props
