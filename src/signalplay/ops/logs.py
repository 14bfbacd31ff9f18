"""Logging: structured JSON lines with the run id, and secrets redacted from every record.

`configure()` installs one handler on the root logger; `run_context()` tags every record logged
inside a run with its id; `secret_values()` collects what must never be shown (the settings'
secret fields and the SIGNALPLAY_* variables that hold tokens, keys, secrets or passwords) and
`redact()` blanks them in any text: log lines, errors, plans and reports. Imports: stdlib,
pydantic.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, SecretStr

RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("signalplay_run", default=None)
SECRET_NAME = re.compile(r"(token|secret|password|api_?key|private_?key|client_?secret)", re.I)
MIN_SECRET = 6  # shorter values are not redacted (they would blank ordinary words)
MASK = "***"
_secrets: set[str] = set()


def secret_values(settings: Any = None, environ: dict[str, str] | None = None) -> set[str]:
    """The secret values of the settings and of the environment's SIGNALPLAY_* variables."""
    found: set[str] = set()
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if name.startswith("SIGNALPLAY_") and SECRET_NAME.search(name) and value:
            found.add(value)
    if settings is not None:
        found.update(_walk(settings))
    return {s for s in found if len(s) >= MIN_SECRET}


def _walk(value: Any, name: str = "") -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for key in type(value).model_fields:
            yield from _walk(getattr(value, key), key)
        for key, extra in (value.model_extra or {}).items():
            yield from _walk(extra, key)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, str(key))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item, name)
    elif isinstance(value, str) and SECRET_NAME.search(name):
        yield value


def remember(secrets: Iterable[str]) -> None:
    """Add values to what every log record is scrubbed of."""
    _secrets.update(s for s in secrets if len(s) >= MIN_SECRET)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every secret value replaced by ***."""
    for secret in sorted(_secrets if secrets is None else set(secrets), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Formats each record's message once and scrubs secrets from it (and from exceptions)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Blank every remembered secret in the record's message and arguments."""
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        record.run_id = RUN_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, run id (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
        }
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """`LEVEL logger [run]: message`."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of text for a terminal."""
        run = getattr(record, "run_id", None)
        text = (
            f"{record.levelname} {record.name}{f' [{run}]' if run else ''}: {record.getMessage()}"
        )
        return f"{text}\n{record.exc_text}" if record.exc_text else text


def configure(*, json_lines: bool = False, level: int | str = logging.WARNING) -> None:
    """One stderr handler on the root logger, redacting, as JSON lines or text."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_signalplay", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler._signalplay = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)


@contextmanager
def run_context(run_id: str) -> Iterator[None]:
    """Tag the records logged inside with the run's id."""
    token = RUN_ID.set(run_id)
    try:
        yield
    finally:
        RUN_ID.reset(token)
