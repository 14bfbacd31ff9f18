"""Salesforce's metadata: the fields signalplay needs described, created or extended."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from urllib.parse import quote_plus

from signalplay.connectors.salesforce._base import _Base
from signalplay.connectors.salesforce._wire import SOBJECTS, _sf_kind, _sf_metadata, _soql_text
from signalplay.errors import FatalError
from signalplay.models import (
    CrmField,
    CrmMetadata,
    FieldSpec,
)


class _Schema(_Base):
    """Salesforce's metadata: the fields signalplay needs described, created or extended."""

    def ensure_schema(self, account_fields: Sequence[str] = ()) -> list[str]:
        """Check that the fields signalplay writes exist.

        Check that the fields signalplay writes exist (creating them is `crm setup`, through
        the Metadata API); returns nothing created, raises naming what is missing.
        """
        missing = [f for f in account_fields if f not in self._field_names("Account")]
        if self.settings.task_key_field not in self._field_names("Task"):
            missing.append(f"Task.{self.settings.task_key_field}")
        if missing:
            raise FatalError(
                "salesforce", "check fields", f"missing custom fields: {', '.join(missing)}"
            )
        return []

    # provisioning and preflight (`signalplay crm setup` / `crm check`) -------------------------
    @property
    def task_fields(self) -> dict[str, str]:
        """The Task fields signalplay owns, by role."""
        return {
            "episode_key": self.settings.task_key_field,
            "closure_reason": self.settings.closure_reason_field,
        }

    def describe_crm(self) -> CrmMetadata:
        """Account and Task fields as describe reports them, and the active users (owners)."""
        fields: dict[str, dict[str, CrmField]] = {}
        for obj, sobject in SOBJECTS.items():
            described = self._call(f"describe {sobject}", getattr(self.sf, sobject).describe)
            fields[obj] = {
                f["name"]: CrmField(
                    name=f["name"],
                    kind=_sf_kind(f["type"]),
                    options=tuple(
                        p["value"] for p in f.get("picklistValues") or () if p.get("active", True)
                    ),
                    unique=bool(f.get("externalId")) and bool(f.get("unique")),
                )
                for f in described["fields"]
            }
        users = self._call(
            "list users",
            lambda: self.sf.query_all("SELECT Id FROM User WHERE IsActive = true"),
        )
        return CrmMetadata(fields=fields, owners=frozenset(str(u["Id"]) for u in users["records"]))

    def create_field(self, spec: FieldSpec) -> None:
        """Deploy one custom field through the Tooling API's CustomField (Metadata) object."""
        sobject = SOBJECTS[spec.object]
        body = {"FullName": f"{sobject}.{spec.name}", "Metadata": _sf_metadata(spec)}
        self._call(
            f"create field {sobject}.{spec.name}",
            lambda: self.sf.toolingexecute("sobjects/CustomField/", method="POST", data=body),
        )
        self._fields.pop(sobject, None)

    def add_picklist_values(self, spec: FieldSpec, values: Sequence[str]) -> None:
        """Extend a custom picklist field's value set (the values it has are kept)."""
        sobject = SOBJECTS[spec.object]
        developer_name = spec.name.removesuffix("__c")
        name, table = _soql_text(developer_name), _soql_text(sobject)  # escaped for SOQL
        soql = f"SELECT Id FROM CustomField WHERE DeveloperName = '{name}' AND TableEnumOrId = '{table}'"  # noqa: E501, S608
        found = self._call(
            "find field", lambda: self.sf.toolingexecute(f"query/?q={quote_plus(soql)}")
        )
        records = found.get("records") or [] if isinstance(found, dict) else []
        if not records:
            raise FatalError(
                "salesforce",
                "add picklist values",
                f"{sobject}.{spec.name} is not a custom field signalplay can extend: add "
                f"{', '.join(values)} to it in Setup",
            )
        have = self.describe_crm().fields[spec.object][spec.name].options
        merged = [*have, *(v for v in values if v not in have)]
        meta = _sf_metadata(replace(spec, options=tuple(merged)))
        rid = records[0]["Id"]
        self._call(
            "update field",
            lambda: self.sf.toolingexecute(
                f"sobjects/CustomField/{rid}", method="PATCH", data={"Metadata": meta}
            ),
        )
        self._fields.pop(sobject, None)
