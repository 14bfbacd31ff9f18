"""The command line (`signalplay`): the commands live in `flow` and `data`."""

from __future__ import annotations

from signalplay.cli import data, flow
from signalplay.cli._app import app

__all__ = ["app", "data", "flow", "main"]


def main() -> None:
    """Console-script entry point."""
    app()
