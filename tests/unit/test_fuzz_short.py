"""The fuzzing's short form: a few dozen Hypothesis cases at every door (expressions,
templates, raw records, signalplay.yaml, mapping, trigger and play files); nothing escapes but
the documented errors, and every bad record is quarantined with its reason. The long form:
`signalplay fuzz --cases 10000`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from signalplay.cli import app
from signalplay.testing.fuzz import TARGETS


def test_every_target_takes_its_cases_without_an_unexpected_exception() -> None:
    result = CliRunner().invoke(app, ["fuzz", "--cases", "20", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    by_target = {t["target"]: t for t in data["targets"]}
    assert set(by_target) == set(TARGETS)
    for name, tally in by_target.items():
        assert tally["cases"] == 20, name
        assert tally["unexpected"] == 0, (name, tally["examples"])
        assert sum(tally["outcomes"].values()) == 20, name
    # the generators reach both sides of each door
    assert by_target["expression"]["outcomes"].get("rejected", 0) > 0
    assert by_target["trigger_file"]["outcomes"].get("rejected", 0) > 0
    assert by_target["record"]["outcomes"].get("quarantined", 0) > 0
    assert data["unexpected"] == 0


def test_an_unknown_target_is_named() -> None:
    result = CliRunner().invoke(app, ["fuzz", "--target", "nope", "--cases", "1"])
    assert result.exit_code == 2
    assert "nope" in result.output
