"""HubSpot's properties: what signalplay needs described, created or extended."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from signalplay.connectors.hubspot._base import _Base
from signalplay.connectors.hubspot._wire import (
    HTTP_CONFLICT,
    HUBSPOT_KINDS,
    OBJECT_TYPES,
    _hubspot_kind,
    _options,
    log,
)
from signalplay.errors import (
    FatalError,
)
from signalplay.models import (
    CrmField,
    CrmMetadata,
    FieldSpec,
)


class _Schema(_Base):
    """HubSpot's properties: what signalplay needs described, created or extended."""

    # ---- writing ---------------------------------------------------------------------------
    def ensure_schema(self, account_fields: Sequence[str] = ()) -> list[str]:
        """Create the properties a run writes when missing, as text; returns what was created.

        `crm setup` creates them typed, with the closure reason picklist.
        """
        created: list[str] = []
        wanted = [
            FieldSpec(
                object="task", name=self.settings.episode_key_property, kind="text", unique=True
            ),
            *(FieldSpec(object="account", name=f, kind="text") for f in account_fields),
        ]
        for spec in wanted:
            otype = OBJECT_TYPES[spec.object]
            if spec.name not in self._property_names(otype):
                self.create_field(spec)
                created.append(f"{otype}.{spec.name}")
        return created

    # ---- provisioning and preflight (`signalplay crm setup` / `crm check`) -------------------
    @property
    def task_fields(self) -> dict[str, str]:
        """The task properties signalplay owns, by role."""
        return {
            "episode_key": self.settings.episode_key_property,
            "closure_reason": self.settings.closure_reason_property,
        }

    def describe_crm(self) -> CrmMetadata:
        """Company and task properties with their kinds and options, and the active owners."""
        fields: dict[str, dict[str, CrmField]] = {}
        for obj, otype in OBJECT_TYPES.items():
            api = self._properties.core_api
            listed = self._call(
                f"properties {otype}", partial(api.get_all, otype, _request_timeout=self._timeout)
            )
            fields[obj] = {
                p.name: CrmField(
                    name=p.name,
                    kind=_hubspot_kind(p.type, p.field_type),
                    options=tuple(o.value for o in p.options or ()),
                    unique=bool(p.has_unique_value),
                )
                for p in listed.results
            }
        owners = frozenset(r.record_id for page in self._read_owners() for r in page.records)
        return CrmMetadata(fields=fields, owners=owners)

    def create_field(self, spec: FieldSpec) -> None:
        """Create one property in the signalplay group (the group too, when missing)."""
        otype = OBJECT_TYPES[spec.object]
        groups = self._call(
            "groups",
            partial(self._properties.groups_api.get_all, otype, _request_timeout=self._timeout),
        )
        if "signalplay" not in {g.name for g in groups.results}:
            group = {"name": "signalplay", "label": "signalplay", "displayOrder": -1}
            self._create(
                "create group",
                partial(
                    self._properties.groups_api.create,
                    otype,
                    group,
                    _request_timeout=self._timeout,
                ),
            )
        ptype, field_type = HUBSPOT_KINDS[spec.kind]
        body: dict[str, Any] = {
            "name": spec.name,
            "label": spec.label or spec.name,
            "type": ptype,
            "fieldType": field_type,
            "groupName": "signalplay",
            "hasUniqueValue": spec.unique,
        }
        if spec.kind == "picklist":
            body["options"] = _options(spec.options)
        self._create(
            "create property",
            partial(self._properties.core_api.create, otype, body, _request_timeout=self._timeout),
        )
        self._catalogue.pop(otype, None)

    def _create(self, operation: str, fn: Callable[[], Any]) -> None:
        """A create that may have happened already.

        A retry after a timeout (the first attempt went through) or another worker answers
        409 Conflict, and the thing exists.
        """
        try:
            self._call(operation, fn)
        except FatalError as exc:
            if exc.status != HTTP_CONFLICT:
                raise
            log.info("%s: it exists already (409)", operation)

    def add_picklist_values(self, spec: FieldSpec, values: Sequence[str]) -> None:
        """Add options to an enumeration property, keeping the ones it has."""
        otype = OBJECT_TYPES[spec.object]
        api = self._properties.core_api
        prop = self._call(
            "read property",
            partial(api.get_by_name, otype, spec.name, _request_timeout=self._timeout),
        )
        have = [o.value for o in prop.options or ()]
        body = {"options": _options([*have, *(v for v in values if v not in have)])}
        self._call(
            "update property",
            partial(api.update, otype, spec.name, body, _request_timeout=self._timeout),
        )
