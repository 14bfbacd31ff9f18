"""The shipped JSON Schemas are what `signalplay schema` writes now, and every shipped RevOps file
validates against its schema (what an editor checks as you type)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from signalplay.definitions.jsonschema import SCHEMAS, render, write_schemas
from signalplay.jobs.scaffold import shipped_mappings

SHIPPED = shipped_mappings()
KIND = {
    "signals": "signals",
    "health": "health",
    "triggers": "triggers",
    "plays": "plays",
    "writeback": "writeback",
    "segments": "segments",
    "routing": "routing",
}


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_shipped_schema_is_fresh(kind: str) -> None:
    shipped = (SHIPPED / "schema" / f"{kind}.schema.json").read_text()
    assert shipped == render(kind), "run `signalplay schema` and commit mappings/schema/"


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_file_validates_against_its_schema(path: Path) -> None:
    kind = KIND.get(path.stem, "mapping")
    schema = json.loads((SHIPPED / "schema" / f"{kind}.schema.json").read_text())
    first = path.read_text().splitlines()[0]
    assert first == f"# yaml-language-server: $schema=schema/{kind}.schema.json"
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_schema_rejects_a_typo_as_an_editor_would(tmp_path: Path) -> None:
    write_schemas(tmp_path)
    schema = json.loads((tmp_path / "mapping.schema.json").read_text())
    doc = yaml.safe_load((SHIPPED / "crm.companies.yaml").read_text())
    doc["fields"]["seats"]["cats"] = "int"
    with pytest.raises(jsonschema.ValidationError, match="cats"):
        jsonschema.validate(doc, schema)


def test_trigger_reference_table_is_fresh() -> None:
    from signalplay.definitions.loader import load_definitions
    from signalplay.jobs.docs import END, START, trigger_table

    text = (SHIPPED.parent / "docs" / "triggers.md").read_text()
    section = text.split(START, 1)[1].split(END, 1)[0].strip()
    table = trigger_table(load_definitions(SHIPPED))
    assert section == table, "run `python -m signalplay.jobs.docs docs/triggers.md` and commit"
    assert len(table.splitlines()) == 2 + 22
