"""The Salesforce connector's base: session, token, re-login, the retrying call.

The simple-salesforce session, its token and re-login, and the one retrying call every request goes
through.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import requests
from pydantic import BaseModel
from simple_salesforce.api import Salesforce

from signalplay.connectors._ratelimit import (
    budget_key,
    make_budget,
    pacing,
)
from signalplay.connectors._retry import (
    CountsRequests,
    call_translated,
    call_with_retry,
    failed,
)
from signalplay.connectors.salesforce._wire import (
    BATCH_CAP,
    RETRIABLE_CODES,
    SalesforceSettings,
    T,
    _TimeoutAdapter,
    _translate,
    log,
)
from signalplay.errors import AuthError, FatalError, RetriableError, SyncError
from signalplay.models import (
    WriteOp,
    WriteResult,
)


class _Base(CountsRequests):
    """The simple-salesforce session and the one retrying call.

    The simple-salesforce session, its token and re-login, and the one retrying call every
    request goes through.
    """

    settings_model: ClassVar[type[BaseModel]] = SalesforceSettings
    max_batch = BATCH_CAP

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        source: str = "crm",
        root: object = None,
        sleep: Callable[[float], None] | None = None,
        broker: str | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        sleep, clock = pacing(sleep)
        self._sleep = sleep
        self.budget = make_budget(
            settings.rate_limit,
            key=budget_key("salesforce", settings.instance_url),
            broker=broker,
            clock=clock,
        )
        session = requests.Session()
        session.trust_env = False  # env CA bundles and proxies must not capture these calls
        if settings.ca_bundle:
            ca = Path(settings.ca_bundle)
            if not ca.is_absolute() and isinstance(root, Path):
                ca = root / ca  # relative to the project, not the working directory
            if not ca.is_file():
                raise FatalError(
                    "salesforce", "connect", f"crm.ca_bundle: no CA certificate file at {ca}"
                )
            session.verify = str(ca)
        adapter = _TimeoutAdapter((settings.connect_timeout, settings.read_timeout))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        self._session = session
        token = (
            settings.access_token.get_secret_value()
            if settings.access_token is not None
            else self._new_token()
        )
        self.sf = Salesforce(
            instance_url=settings.instance_url,
            session_id=token,
            session=session,
            version=settings.api_version,
        )
        self._fields: dict[str, list[str]] = {}

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._session.close()

    def _new_token(self) -> str:
        """A token by the OAuth client-credentials flow of the configured connected app."""
        s = self.settings
        if not s.client_id or s.client_secret is None:
            raise AuthError(
                "salesforce",
                "login",
                "set SIGNALPLAY_CRM__ACCESS_TOKEN, or client_id and SIGNALPLAY_CRM__CLIENT_SECRET",
            )
        url = s.instance_url.rstrip("/") + "/services/oauth2/token"
        client, secret = s.client_id, s.client_secret.get_secret_value()

        def login() -> str:
            try:
                resp = self._session.post(
                    url, data={"grant_type": "client_credentials"}, auth=(client, secret)
                )
            except requests.RequestException as exc:
                raise RetriableError("salesforce", "login", f"transport: {exc}") from None
            try:
                body: Any = resp.json()
            except ValueError:
                body = None
            body = body if isinstance(body, dict) else {}  # an outage answers lists, or HTML
            if resp.status_code == 200 and "access_token" in body:
                return str(body["access_token"])
            detail = f"{body.get('error', resp.status_code)}: {body.get('error_description', '')}"
            if resp.status_code >= 500 or resp.status_code == 429:
                raise RetriableError("salesforce", "login", detail, status=resp.status_code)
            raise AuthError("salesforce", "login", detail, status=resp.status_code)

        if self._sleep is None:
            return call_with_retry(login, max_delay=s.max_retry_seconds)
        return call_with_retry(login, max_delay=s.max_retry_seconds, sleep=self._sleep)

    def _refresh(self) -> bool:
        """Replace an expired session by a fresh token; False when there is no way to."""
        if not self.settings.client_id or self.settings.client_secret is None:
            return False
        token = self._new_token()
        self.sf.session_id = token
        self.sf.headers["Authorization"] = "Bearer " + token
        log.info("salesforce session renewed")
        return True

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        def retried() -> T:
            return call_translated(
                lambda: self._counted(fn),
                operation=operation,
                translate=_translate,
                max_delay=self.settings.max_retry_seconds,
                sleep=self._sleep,
                budget=self.budget,
            )

        try:
            return retried()
        except AuthError:
            # One fresh session, then the call once more: a second 401 is final (no login loop).
            if not self._refresh():
                raise
            return retried()

    def _field_names(self, sobject: str) -> list[str]:
        if sobject not in self._fields:
            described = self._call(f"describe {sobject}", getattr(self.sf, sobject).describe)
            self._fields[sobject] = [f["name"] for f in described["fields"]]
        return self._fields[sobject]

    def _collection(
        self, operation: str, path: str, ops: Sequence[WriteOp], records: list[dict[str, Any]]
    ) -> dict[str, WriteResult]:
        body = {"allOrNone": False, "records": records}
        try:
            answer = self._call(
                operation, functools.partial(self.sf.restful, path, method="PATCH", json=body)
            )
        except SyncError as exc:
            return {o.op_key: failed(o, exc) for o in ops}
        out: dict[str, WriteResult] = {}
        for op, result in zip(ops, answer or [], strict=False):
            if result.get("success"):
                out[op.op_key] = WriteResult(
                    op_key=op.op_key,
                    ok=True,
                    crm_id=result.get("id"),
                    created=bool(result.get("created")),
                )
                continue
            errors = result.get("errors") or [{}]
            code = errors[0].get("statusCode", "")
            out[op.op_key] = WriteResult(
                op_key=op.op_key,
                ok=False,
                error=f"{code}: {errors[0].get('message', '')}",
                retriable=code in RETRIABLE_CODES,
            )
        return out
