"""The HubSpot connector's base: API objects, the retrying call, shared listings.

The HubSpot API objects, read once, the one retrying call every request goes through, and the
property and owner listings reads and writes share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, ClassVar

from hubspot import HubSpot
from pydantic import BaseModel
from urllib3.util.retry import Retry

from signalplay.connectors._ratelimit import (
    budget_key,
    make_budget,
    pacing,
)
from signalplay.connectors._retry import CountsRequests, call_translated
from signalplay.connectors.hubspot._wire import BATCH_CAP, HubSpotSettings, T, _translate
from signalplay.models import (
    Page,
    SourceRecord,
)


class _Base(CountsRequests):
    """The HubSpot API objects, read once, and the one retrying call.

    The HubSpot API objects, read once, the one retrying call every request goes through, and
    the property and owner listings reads and writes share.
    """

    settings_model: ClassVar[type[BaseModel]] = HubSpotSettings
    max_batch = BATCH_CAP

    def __init__(
        self,
        settings: HubSpotSettings,
        *,
        source: str = "crm",
        root: object = None,
        sleep: Callable[[float], None] | None = None,
        broker: str | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        token = settings.access_token.get_secret_value()
        sleep, clock = pacing(sleep)
        self.budget = make_budget(
            settings.rate_limit,
            key=budget_key("hubspot", settings.host, token),
            broker=broker,
            clock=clock,
        )
        # urllib3's default Retry still honours Retry-After on GETs: switch the SDK's retries off
        # entirely so that our one retry policy (connectors/_retry.py) owns every wait.
        no_retry = Retry(
            total=0,
            connect=0,
            read=0,
            redirect=0,
            status=0,
            respect_retry_after_header=False,
            raise_on_status=False,
        )
        client = HubSpot(
            access_token=token,
            host=settings.host,
            retry=no_retry,
        )
        # Each property access builds a new ApiClient and pool: read the API objects once.
        self._companies = client.crm.companies
        self._contacts = client.crm.contacts
        self._deals = client.crm.deals
        self._tasks = client.crm.objects.tasks
        self._owners = client.crm.owners.owners_api
        self._properties = client.crm.properties
        self._assoc = client.crm.associations.v4.batch_api
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._sleep = sleep
        self._catalogue: dict[str, list[str]] = {}
        self._owners_by_id: dict[str, dict[str, Any]] | None = None

    def close(self) -> None:
        """Nothing to release: urllib3 pools close with the process."""

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        return call_translated(
            lambda: self._counted(fn),
            operation=operation,
            translate=_translate,
            max_delay=self.settings.max_retry_seconds,
            sleep=self._sleep,
            budget=self.budget,
        )

    def _property_names(self, otype: str) -> list[str]:
        if otype not in self._catalogue:
            api = self._properties.core_api
            result = self._call(
                f"properties {otype}", lambda: api.get_all(otype, _request_timeout=self._timeout)
            )
            self._catalogue[otype] = sorted(p.name for p in result.results)
        return self._catalogue[otype]

    def _read_owners(self) -> Iterator[Page]:
        after: str | None = None
        while True:
            page = self._call(
                "list owners",
                partial(
                    self._owners.get_page,
                    limit=100,
                    after=after,
                    archived=False,
                    _request_timeout=self._timeout,
                ),
            )
            records = tuple(
                SourceRecord(
                    source=self.source,
                    stream="owners",
                    record_id=str(o.id),
                    data={
                        "id": str(o.id),
                        "email": o.email,
                        "first_name": o.first_name,
                        "last_name": o.last_name,
                        "user_id": o.user_id,
                    },
                    updated_at=o.updated_at,
                )
                for o in page.results
            )
            yield Page(records=records, cursor=None)
            after = page.paging.next.after if page.paging and page.paging.next else None
            if after is None:
                return
