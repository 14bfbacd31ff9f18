"""Connectors by entry point, their settings checked with file positions.

Connectors by entry point (group `signalplay.connectors`), their settings checked with file
positions. A third party adds a connector from its own package. Imports: stdlib, pydantic, core.
"""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from signalplay.errors import ConfigError, Issue
from signalplay.lang.yamlsrc import validation_issues
from signalplay.settings import Project, SourceBlock

GROUP = "signalplay.connectors"


def connector_class(name: str) -> Any:
    """The connector class registered under `name`."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ConfigError(
            [
                Issue(
                    "signalplay.yaml",
                    None,
                    None,
                    "connector",
                    f"unknown connector {name!r} (installed: {known})",
                )
            ]
        )
    return found[name].load()


def build_connector(
    project: Project, source: str, block: SourceBlock, *, loc: tuple[str, ...], **kwargs: Any
) -> Any:
    """Validate a source block with its connector's settings model and build the connector."""
    cls = connector_class(block.connector)
    try:
        settings = cls.settings_model.model_validate(block.model_dump())
    except ValidationError as exc:
        if project.config_doc is None:
            raise ConfigError(
                [Issue("signalplay.yaml", None, None, ".".join(loc), str(exc))]
            ) from None
        issues = [
            Issue(
                i.file,
                i.line,
                i.column,
                i.field,
                i.message,
                f"or set SIGNALPLAY_{i.field.upper().replace('.', '__')} in the environment",
            )
            if i.message == "required field is missing"
            else i
            for i in validation_issues(project.config_doc, exc, prefix=loc)
        ]
        raise ConfigError(issues) from None
    parameters = inspect.signature(cls).parameters
    if "broker" in parameters:
        # CRM connectors share one rate budget per org through the broker's Redis.
        kwargs.setdefault("broker", project.settings.broker)
    if "allowed_paths" in parameters:  # connectors that read files: only inside the project
        kwargs.setdefault("allowed_paths", project.settings.allowed_paths)
    return cls(settings, source=source, root=Path(project.root), **kwargs)
