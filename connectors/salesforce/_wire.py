"""Salesforce's wire.

Settings, vendor limits, the error classification, the timeout adapter, and the helpers that shape
SOQL and metadata.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, ConfigDict, SecretStr
from requests.adapters import HTTPAdapter
from simple_salesforce.exceptions import SalesforceError

from signalplay.connectors._http import connect_reason
from signalplay.connectors._ratelimit import (
    RateLimitSettings,
    Window,
)
from signalplay.errors import (
    AuthError,
    FatalError,
    RateLimitedError,
    RetriableError,
    SyncError,
    UnreachableError,
)
from signalplay.models import (
    FieldSpec,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_CAP = 200  # records per sObject Collections call
STREAMS = {
    "accounts": "Account",
    "contacts": "Contact",
    "contact_roles": "AccountContactRole",
    "opportunity_contact_roles": "OpportunityContactRole",
    "users": "User",
    "opportunities": "Opportunity",
    "tasks": "Task",
}
PRIORITY = {"low": "Low", "medium": "Normal", "high": "High", "urgent": "High"}
RETRIABLE_CODES = {"UNABLE_TO_LOCK_ROW", "QUERY_TIMEOUT", "SERVER_UNAVAILABLE"}
EPOCH = "1970-01-01T00:00:00Z"


class SalesforceSettings(BaseModel):
    """The `crm:` block for Salesforce; the token comes from SIGNALPLAY_CRM__ACCESS_TOKEN."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connector: str = "salesforce"
    instance_url: str
    access_token: SecretStr | None = None  # a session id; or a connected app's credentials:
    client_id: str | None = None  # client-credentials flow, a fresh token on an expired one
    client_secret: SecretStr | None = None
    api_version: str = "59.0"
    ca_bundle: str | None = None  # the sandbox's test CA; None: the system's trust store
    task_key_field: str = "Signalplay_Key__c"
    closure_reason_field: str = "Signalplay_Closure_Reason__c"
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_retry_seconds: float = 60.0
    # The smallest org's daily allocation (Developer Edition): raise it to your org's share.
    rate_limit: RateLimitSettings = RateLimitSettings(
        windows=(Window(limit=15_000, seconds=86_400),)
    )


class _TimeoutAdapter(HTTPAdapter):
    """Every request gets a timeout (simple-salesforce passes none on most calls)."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self._timeout = timeout

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Send with the default timeout unless one is given."""
        kwargs["timeout"] = kwargs.get("timeout") or self._timeout
        return super().send(request, **kwargs)


def _transport(exc: requests.RequestException, operation: str) -> RetriableError:
    """A timeout (retried), or no connection at all (named by its address)."""
    if isinstance(exc, requests.Timeout):
        return RetriableError("salesforce", operation, f"transport: {exc}")
    url = getattr(getattr(exc, "request", None), "url", None)
    parts = urlsplit(url) if url else None
    where = f"{parts.scheme}://{parts.netloc}" if parts else "the org"
    return UnreachableError("salesforce", operation, where, connect_reason(exc))


def classify(exc: Exception, operation: str) -> SyncError:
    """A simple-salesforce or transport failure as one of our error kinds."""
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return _transport(exc, operation)
    if isinstance(exc, SalesforceError):
        raw: Any = exc.content  # typed as bytes, but the client hands over the parsed JSON list
        content: list[Any] = raw if isinstance(raw, list) else []
        code = content[0].get("errorCode", "") if content and isinstance(content[0], dict) else ""
        message = content[0].get("message", str(exc)) if code else str(exc)[:300]
        detail = f"{code}: {message}" if code else message
        if exc.status == 401:
            return AuthError("salesforce", operation, detail, status=401)
        if code == "REQUEST_LIMIT_EXCEEDED":
            # The rolling 24-hour allocation: waiting minutes does not help; stop and resume later.
            return RateLimitedError("salesforce", operation, detail, status=exc.status)
        if exc.status >= 500 or exc.status in (420, 429) or code in RETRIABLE_CODES:
            return RetriableError("salesforce", operation, detail, status=exc.status)
        return FatalError("salesforce", operation, detail, status=exc.status)
    return FatalError("salesforce", operation, f"{type(exc).__name__}: {exc}")


def _translate(exc: Exception, operation: str) -> SyncError | None:
    if isinstance(exc, SalesforceError | requests.RequestException):
        return classify(exc, operation)
    return None


def _soql_time(value: str) -> str:
    """An API datetime (`2026-01-02T10:00:00.000+0000`) as a SOQL literal (`...Z`)."""
    return _parse_time(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    text = value.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and ":" not in text[-5:]:
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text).astimezone(UTC)


def _safe_id(value: str) -> bool:
    return value.isalnum() and len(value) in (15, 18)


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


SOBJECTS = {"account": "Account", "task": "Task"}
_SF_KINDS = {
    "double": "number",
    "int": "number",
    "currency": "number",
    "percent": "number",
    "textarea": "textarea",
    "picklist": "picklist",
    "date": "date",
    "datetime": "datetime",
    "boolean": "boolean",
}


def _sf_kind(sf_type: str) -> str:
    return _SF_KINDS.get(sf_type, "text")


def _sf_metadata(spec: FieldSpec) -> dict[str, Any]:
    """The CustomField Metadata for a field signalplay writes."""
    meta: dict[str, Any] = {"label": (spec.label or spec.name)[:40]}
    if spec.kind == "number":
        meta |= {"type": "Number", "precision": 18, "scale": 2}
    elif spec.kind == "textarea":
        meta |= {"type": "LongTextArea", "length": 32768, "visibleLines": 3}
    elif spec.kind == "picklist":
        meta |= {
            "type": "Picklist",
            "valueSet": {
                "restricted": True,
                "valueSetDefinition": {
                    "sorted": False,
                    "value": [{"fullName": o, "label": o, "default": False} for o in spec.options],
                },
            },
        }
    elif spec.kind in ("date", "datetime"):
        meta["type"] = "Date" if spec.kind == "date" else "DateTime"
    elif spec.kind == "boolean":
        meta |= {"type": "Checkbox", "defaultValue": "false"}
    else:
        meta |= {"type": "Text", "length": 255}
        if spec.unique:
            meta |= {"externalId": True, "unique": True, "caseSensitive": True}
    return meta


def _soql_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
