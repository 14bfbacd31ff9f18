"""EDGE · the command line (`signalplay`).

The commands live in `flow`, `data`, `ops`, `crm` and `measure`; each parses its options, calls one
use case and renders what it returns.
"""

from __future__ import annotations

from signalplay.cli import crm, data, flow, measure, ops
from signalplay.cli._app import app

__all__ = ["app", "crm", "data", "flow", "main", "measure", "ops"]


def main() -> None:
    """Console-script entry point."""
    app()
