"""The HubSpot stand-in answers as hubspot-api-client 12.0.0 expects: for each endpoint signalplay
uses, the status is one the client maps to a model and the body has that model's fields, types
and enums, and no field the model lacks (tests/fixtures/hubspot/client-contract-...json). The
Sequences v4 answers validate against the JSON Schemas of sequences-v4-contract.json."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hubspot"
CONTRACT = json.loads((FIXTURES / "client-contract-hubspot-api-client-12.0.0.json").read_text())
SEQUENCES = json.loads((FIXTURES / "sequences-v4-contract.json").read_text())
TOKEN = "pat-contract"


SCALARS: dict[str, Any] = {"str": str, "bool": bool, "int": int, "float": (int, float)}


def problems(value: Any, kind: str, models: dict[str, Any], where: str) -> list[str]:
    """Where `value` does not fit the client's type `kind` (a model name, list[...], ...)."""
    if value is None or kind == "object":
        return []
    if m := re.fullmatch(r"(list|dict)\[(?:str, )?(.+)\]", kind):
        container = list if m[1] == "list" else dict
        if not isinstance(value, container):
            return [f"{where}: expected a {m[1]}, got {type(value).__name__}"]
        items = enumerate(value) if container is list else value.items()
        return [p for k, v in items for p in problems(v, m[2], models, f"{where}[{k}]")]
    if kind in SCALARS or kind == "datetime":
        return [] if _scalar_fits(value, kind) else [f"{where}: {value!r} is not {kind}"]
    return _model_problems(value, kind, models, where)


def _scalar_fits(value: Any, kind: str) -> bool:
    if kind == "datetime":
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return False
        return isinstance(value, str)
    return isinstance(value, SCALARS[kind]) and not (kind == "int" and isinstance(value, bool))


def _model_problems(value: Any, kind: str, models: dict[str, Any], where: str) -> list[str]:
    model = models[kind]
    if not isinstance(value, dict):
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    out = [f"{where}.{k}: not a field of {kind}" for k in value if k not in model["fields"]]
    for name, spec in model["fields"].items():
        if name not in value:
            if spec.get("required_in_generator"):
                out.append(f"{where}.{name}: required by {kind}, missing")
            continue
        if "enum" in spec and value[name] is not None and value[name] not in spec["enum"]:
            out.append(f"{where}.{name}: {value[name]!r} not in {spec['enum']}")
        out += problems(value[name], spec["type"], models, f"{where}.{name}")
    return out


class Client:
    """Plain HTTP against the stand-in, each answer checked against the endpoint's contract."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Bearer {TOKEN}"

    def call(
        self,
        client_call: str,
        *,
        params: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
        body: Any = None,
    ) -> tuple[int, Any]:
        package = ".".join(client_call.split(".")[:-2])
        spec = CONTRACT["packages"][package]
        endpoint = next(e for e in spec["endpoints"] if e["client_call"] == client_call)
        path = endpoint["path"].format(**(params or {}))
        answer = self.http.request(
            endpoint["method"], self.url + path, params=query, json=body, timeout=10
        )
        data = answer.json() if answer.content else None
        statuses = endpoint["responses"]
        assert str(answer.status_code) in statuses, (client_call, answer.status_code, data)
        found = problems(data, statuses[str(answer.status_code)], spec["models"], client_call)
        assert found == [], found
        return answer.status_code, data


@pytest.fixture
def hub() -> Iterator[tuple[HubSpotSandbox, Client]]:
    sandbox = HubSpotSandbox(token=TOKEN)
    sandbox.seed_owner(owner_id="101", user_id=5001, email="a@v.example", first="A", last="M")
    sandbox.seed_sequence(sequence_id="900", name="Renewal outreach", user_id=5001)
    sandbox.seed_property("tasks", "signalplay_episode_key")
    sandbox.state.properties["tasks"]["signalplay_episode_key"]["hasUniqueValue"] = True
    with serve(sandbox) as server:
        yield sandbox, Client(server.url)


def _seed(sandbox: HubSpotSandbox) -> tuple[str, str, str]:
    company = sandbox.seed_object(
        "companies", {"name": "Acme", "domain": "acme.test"}, unique_by="domain"
    )
    contact = sandbox.seed_object("contacts", {"email": "ana@acme.test"}, unique_by="email")
    sandbox.seed_association("contacts", contact, "companies", company, 1)
    deal = sandbox.seed_object(
        "deals", {"dealname": "Renewal 2027", "amount": "48000"}, unique_by="dealname"
    )
    return company, contact, deal


def test_objects_lists_reads_and_batch_updates(hub: tuple[HubSpotSandbox, Client]) -> None:
    sandbox, client = hub
    company, _, deal = _seed(sandbox)
    _, page = client.call(
        "crm.companies.basic_api.get_page",
        query={"limit": 2, "properties": ["name", "domain"], "associations": ["contacts"]},
    )
    assert page["results"][0]["properties"]["name"] == "Acme"
    client.call(
        "crm.companies.basic_api.get_by_id",
        params={"companyId": company},
        query={"properties": "name"},
    )
    client.call("crm.contacts.basic_api.get_page", query={"associations": "companies"})
    _, deals = client.call("crm.deals.basic_api.get_page", query={"properties": "dealname,amount"})
    assert deals["results"][0]["id"] == deal
    status, _ = client.call(
        "crm.companies.batch_api.update",
        body={"inputs": [{"id": company, "properties": {"name": "Acme Inc"}}]},
    )
    assert status == 200
    client.call(
        "crm.companies.batch_api.read",
        body={
            "inputs": [{"id": company}, {"id": "999999"}],
            "properties": ["name"],
            "propertiesWithHistory": [],
        },
    )


def test_property_history_lists_each_change_newest_first(
    hub: tuple[HubSpotSandbox, Client],
) -> None:
    sandbox, client = hub
    company, _, _ = _seed(sandbox)
    client.call(
        "crm.companies.batch_api.update",
        body={"inputs": [{"id": company, "properties": {"name": "Acme Inc"}}]},
    )
    history = ["name", "domain"]
    _, page = client.call(
        "crm.companies.basic_api.get_page",
        query={"limit": 50, "properties": history, "propertiesWithHistory": history},
    )
    kept = page["results"][0]["propertiesWithHistory"]
    assert [h["value"] for h in kept["name"]] == ["Acme Inc", "Acme"]  # newest first
    assert [h["value"] for h in kept["domain"]] == ["acme.test"]
    assert kept["name"][0]["timestamp"] >= kept["name"][1]["timestamp"]
    over = client.http.get(
        client.url + "/crm/v3/objects/companies",
        params={"limit": 51, "propertiesWithHistory": "name"},
        timeout=10,
    )
    assert over.status_code == 400  # pages with history hold at most 50
    _, read = client.call(
        "crm.companies.batch_api.read",
        body={"inputs": [{"id": company}], "properties": [], "propertiesWithHistory": ["name"]},
    )
    assert len(read["results"][0]["propertiesWithHistory"]["name"]) == 2


def test_association_labels_read_by_batch_with_their_names(
    hub: tuple[HubSpotSandbox, Client],
) -> None:
    sandbox, client = hub
    company, contact, _ = _seed(sandbox)
    champion = sandbox.seed_label("contacts", "companies", "Champion")
    sandbox.seed_association("contacts", contact, "companies", company, champion)
    _, read = client.call(
        "crm.associations.v4.batch_api.get_page",
        params={"fromObjectType": "contacts", "toObjectType": "companies"},
        body={"inputs": [{"id": contact}, {"id": "999999"}]},
    )
    (result,) = read["results"]  # a record without links has no result
    (target,) = result["to"]
    assert target["toObjectId"] == company
    assert {(t["category"], t["label"]) for t in target["associationTypes"]} == {
        ("HUBSPOT_DEFINED", None),
        ("USER_DEFINED", "Champion"),
    }
    labels = client.http.get(client.url + "/crm/v4/associations/contacts/companies/labels")
    assert {t["label"] for t in labels.json()["results"]} == {None, "Champion"}
    sandbox.remove_label("contacts", contact, "companies", company, "Champion")
    _, again = client.call(
        "crm.associations.v4.batch_api.get_page",
        params={"fromObjectType": "contacts", "toObjectType": "companies"},
        body={"inputs": [{"id": contact}]},
    )
    assert [t["label"] for t in again["results"][0]["to"][0]["associationTypes"]] == [None]


def test_tasks_upsert_search_read_and_associations(hub: tuple[HubSpotSandbox, Client]) -> None:
    sandbox, client = hub
    company, _, _ = _seed(sandbox)
    task = {
        "hs_timestamp": "2026-12-01T15:00:00Z",
        "hs_task_subject": "Call Acme",
        "hs_task_status": "NOT_STARTED",
        "hs_task_priority": "HIGH",
    }
    status, upserted = client.call(
        "crm.objects.tasks.batch_api.upsert",
        body={
            "inputs": [
                {"idProperty": "signalplay_episode_key", "id": "sp_1:call", "properties": task}
            ]
        },
    )
    assert status == 200
    assert upserted["results"][0]["new"] is True
    status, partial = client.call(
        "crm.objects.tasks.batch_api.upsert",
        body={
            "inputs": [
                {"idProperty": "signalplay_episode_key", "id": "sp_2:call", "properties": task},
                {
                    "idProperty": "signalplay_episode_key",
                    "id": "sp_3:call",
                    "properties": {**task, "hs_task_priority": "SOMEDAY"},
                },
            ]
        },
    )
    assert status == 207
    assert partial["numErrors"] == 1
    tid = upserted["results"][0]["id"]
    status, _ = client.call(
        "crm.associations.v4.batch_api.create",
        params={"fromObjectType": "tasks", "toObjectType": "companies"},
        body={
            "inputs": [
                {
                    "from": {"id": tid},
                    "to": {"id": company},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}],
                }
            ]
        },
    )
    assert status == 201
    _, found = client.call(
        "crm.objects.tasks.search_api.do_search",
        body={
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "signalplay_episode_key", "operator": "HAS_PROPERTY"}
                    ]
                }
            ],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["hs_task_status", "signalplay_episode_key"],
            "limit": 200,
        },
    )
    assert found["total"] == 2
    client.call(
        "crm.objects.tasks.batch_api.read",
        body={
            "inputs": [{"id": "sp_1:call"}],
            "idProperty": "signalplay_episode_key",
            "properties": ["hs_task_status"],
            "propertiesWithHistory": [],
        },
    )


def test_properties_groups_and_owners(hub: tuple[HubSpotSandbox, Client]) -> None:
    _, client = hub
    _, listed = client.call("crm.properties.core_api.get_all", params={"objectType": "companies"})
    assert any(p["name"] == "domain" for p in listed["results"])
    client.call(
        "crm.properties.groups_api.create",
        params={"objectType": "tasks"},
        body={"name": "signalplay", "label": "signalplay", "displayOrder": -1},
    )
    client.call("crm.properties.groups_api.get_all", params={"objectType": "tasks"})
    status, created = client.call(
        "crm.properties.core_api.create",
        params={"objectType": "tasks"},
        body={
            "name": "signalplay_closure_reason",
            "label": "Closure reason",
            "type": "enumeration",
            "fieldType": "select",
            "groupName": "signalplay",
            "options": [
                {"label": "Resolved", "value": "resolved", "displayOrder": 0, "hidden": False}
            ],
        },
    )
    assert status == 201
    _, updated = client.call(
        "crm.properties.core_api.update",
        params={"objectType": "tasks", "propertyName": "signalplay_closure_reason"},
        body={
            "options": [
                *created["options"],
                {
                    "label": "False positive",
                    "value": "false_positive",
                    "displayOrder": 1,
                    "hidden": False,
                },
            ]
        },
    )
    assert [o["value"] for o in updated["options"]] == ["resolved", "false_positive"]
    _, owners = client.call("crm.owners.owners_api.get_page", query={"limit": 100})
    assert owners["results"][0]["userId"] == 5001


def _sequence_schema(name: str) -> dict[str, Any]:
    return {**SEQUENCES["schemas"][name], "schemas": SEQUENCES["schemas"]}  # for #/schemas/ refs


def test_sequences_v4_answers_match_their_schemas(hub: tuple[HubSpotSandbox, Client]) -> None:
    sandbox, client = hub
    _, contact, _ = _seed(sandbox)
    http, url = client.http, client.url
    listed = http.get(f"{url}/automation/v4/sequences", params={"userId": "5001"}, timeout=10)
    assert listed.status_code == 200
    jsonschema.validate(listed.json(), _sequence_schema("SequenceLiteCollection"))
    body = {"sequenceId": "900", "contactId": contact, "senderEmail": "a@v.example"}
    jsonschema.validate(body, _sequence_schema("EnrollmentRequest"))
    enrolled = http.post(
        f"{url}/automation/v4/sequences/enrollments",
        params={"userId": "5001"},
        json=body,
        timeout=10,
    )
    assert enrolled.status_code == 200
    jsonschema.validate(enrolled.json(), _sequence_schema("EnrollmentLite"))
    current = http.get(f"{url}/automation/v4/sequences/enrollments/contact/{contact}", timeout=10)
    assert current.status_code == 200
    jsonschema.validate(current.json(), _sequence_schema("Enrollment"))
    again = http.post(
        f"{url}/automation/v4/sequences/enrollments",
        params={"userId": "5001"},
        json=body,
        timeout=10,
    )
    assert again.status_code >= 400
    jsonschema.validate(again.json(), _sequence_schema("Error"))


def test_archived_records_list_apart_and_unlinked_ones_lose_every_label(
    hub: tuple[HubSpotSandbox, Client],
) -> None:
    sandbox, client = hub
    company, contact, _ = _seed(sandbox)
    other = sandbox.seed_object("contacts", {"email": "bo@acme.test"}, unique_by="email")
    champion = sandbox.seed_label("contacts", "companies", "Champion")
    sandbox.seed_association("contacts", other, "companies", company, 1)
    sandbox.seed_association("contacts", other, "companies", company, champion)
    sandbox.archive("contacts", contact)
    _, live = client.call("crm.contacts.basic_api.get_page")
    _, gone = client.call("crm.contacts.basic_api.get_page", query={"archived": "true"})
    assert [r["id"] for r in live["results"]] == [other]
    (archived,) = gone["results"]
    assert archived["id"] == contact
    assert archived["archived"] is True
    assert archived["archivedAt"]
    sandbox.unlink("contacts", other, "companies", company)
    _, read = client.call(
        "crm.associations.v4.batch_api.get_page",
        params={"fromObjectType": "contacts", "toObjectType": "companies"},
        body={"inputs": [{"id": other}]},
    )
    assert read["results"] == []  # neither the default link nor the Champion label is left
    _, back = client.call(
        "crm.associations.v4.batch_api.get_page",
        params={"fromObjectType": "companies", "toObjectType": "contacts"},
        body={"inputs": [{"id": company}]},
    )
    linked = {t["toObjectId"] for r in back["results"] for t in r["to"]}
    assert other not in linked  # the inverse went with it
