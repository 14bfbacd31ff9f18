"""JSON Schemas of the RevOps file formats, so editors autocomplete and check them as you type.

`signalplay schema` writes them; the shipped copies live in `mappings/schema/` and a test fails
when they are stale. Imports: json, definitions.schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from signalplay.definitions.schema import (
    HealthFile,
    MappingFile,
    PlaysFile,
    RoutingFile,
    SegmentsFile,
    SignalsFile,
    TriggersFile,
    WritebackFile,
)

SCHEMAS: dict[str, type[BaseModel]] = {
    "mapping": MappingFile,
    "signals": SignalsFile,
    "health": HealthFile,
    "triggers": TriggersFile,
    "plays": PlaysFile,
    "writeback": WritebackFile,
    "segments": SegmentsFile,
    "routing": RoutingFile,
}
BASE_ID = "https://signalplay.dev/schema/"


def file_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one file kind."""
    schema = SCHEMAS[kind].model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{BASE_ID}{kind}.schema.json",
        **schema,
    }


def render(kind: str) -> str:
    """A schema as the text written to disk (stable, so the shipped copy can be compared)."""
    return json.dumps(file_schema(kind), indent=2, sort_keys=True) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    """Write every schema into `folder`; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in SCHEMAS:
        path = folder / f"{kind}.schema.json"
        path.write_text(render(kind), encoding="utf-8")
        written.append(path)
    return written
