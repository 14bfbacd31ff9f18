"""The command line (`signalplay`): the commands live in `flow`, `data`, `crm` and `measure`."""

from __future__ import annotations

from signalplay.cli import crm, data, flow, measure
from signalplay.cli._app import app

__all__ = ["app", "crm", "data", "flow", "main", "measure"]


def main() -> None:
    """Console-script entry point."""
    app()
