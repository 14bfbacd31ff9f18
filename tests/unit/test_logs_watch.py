"""Logs are JSON lines tagged with the run id, with every secret value blanked (message,
arguments and exception); the run history's watchdog names a failed, stuck or silent
schedule."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, SecretStr

from signalplay.ops import logs
from signalplay.ops.watch import check_runs

CANARY = "canary-7f3a9c1e5b"


class Block(BaseModel):
    model_config = {"extra": "allow"}
    api_token: SecretStr = SecretStr(CANARY + "-token")


def test_secret_values_come_from_secret_fields_extras_and_the_environment() -> None:
    block = Block(client_secret=CANARY + "-extra", name="not secret at all")  # type: ignore[call-arg]
    found = logs.secret_values(
        block,
        environ={
            "SIGNALPLAY_CRM__ACCESS_TOKEN": CANARY + "-env",
            "SIGNALPLAY_STORE": "sqlite:///x.db",
            "HOME": "/root",
        },
    )
    assert found == {CANARY + "-token", CANARY + "-extra", CANARY + "-env"}


def _handler(json_lines: bool) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RedactingFilter())
    handler.setFormatter(logs.JsonFormatter() if json_lines else logs.TextFormatter())
    logger = logging.getLogger(f"test.logs.{json_lines}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_json_lines_carry_the_run_id_and_never_a_secret() -> None:
    logs.remember([CANARY])
    logger, stream = _handler(json_lines=True)
    with logs.run_context("run-42"):
        logger.warning("calling with Authorization: Bearer %s", CANARY)
        try:
            raise RuntimeError(f"401 for token {CANARY}")
        except RuntimeError:
            logger.exception("request failed")
    logger.info("outside a run")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["run_id"] for line in lines] == ["run-42", "run-42", None]
    assert lines[0]["msg"] == "calling with Authorization: Bearer ***"
    assert "RuntimeError: 401 for token ***" in lines[1]["exc"]
    assert CANARY not in stream.getvalue()


def test_text_lines_are_redacted_too() -> None:
    logs.remember([CANARY])
    logger, stream = _handler(json_lines=False)
    logger.warning("key=%s", CANARY)
    assert stream.getvalue().strip().endswith("key=***")


NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def run(status: str, minutes_ago: float, kind: str = "run", took: float = 1) -> dict:  # type: ignore[type-arg]
    started = NOW - timedelta(minutes=minutes_ago)
    finished = started + timedelta(minutes=took) if status != "running" else None
    return {
        "run_id": f"{kind}-{minutes_ago}",
        "kind": kind,
        "status": status,
        "started_at": started,
        "finished_at": finished,
    }


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([], "never"),
        ([run("ok", 30)], None),  # hourly: fine
        ([run("ok", 119)], None),  # within twice the period
        ([run("ok", 130)], "silent"),  # the schedule stopped
        ([run("failed", 10), run("ok", 70)], "failed"),
        ([run("running", 150), run("ok", 210)], "stuck"),
        ([run("running", 5), run("ok", 65)], None),  # in progress
        ([run("ok", 20, kind="backfill"), run("ok", 300)], "silent"),  # not a scheduled run
        ([run("ok", 10, kind="sync"), run("failed", 70)], None),  # recovered
    ],
)
def test_the_watchdog(history: list, expected: str | None) -> None:  # type: ignore[type-arg]
    alert = check_runs(history, NOW, every_minutes=60)
    assert (alert.kind if alert else None) == expected
