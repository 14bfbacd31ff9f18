"""The command line (`signalplay`): the commands live in `flow`, `data` and `crm`."""

from __future__ import annotations

from signalplay.cli import crm, data, flow
from signalplay.cli._app import app

__all__ = ["app", "crm", "data", "flow", "main"]


def main() -> None:
    """Console-script entry point."""
    app()
