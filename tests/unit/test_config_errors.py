from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from signalplay.cli import app
from signalplay.definitions.loader import load_definitions
from signalplay.errors import ConfigError
from signalplay.jobs.scaffold import init_project, shipped_mappings
from signalplay.settings import load_project


def test_load_project_broken_config_names_file_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "signalplay.yaml").write_text(
        "version: 1\nstoer: sqlite:///x.db\ncrm:\n  host: http://x\nschedule_minutes: no\n"
    )
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)
    text = str(info.value)
    assert f"{tmp_path}/signalplay.yaml:2:1: stoer: unknown field" in text
    assert "signalplay.yaml:3:1: crm.connector: required field is missing" in text
    assert "signalplay.yaml:5:1: schedule_minutes" in text


def test_cli_broken_config_exits_2_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "signalplay.yaml").write_text("version: 1\ncrm:\n  connector: hubspot\n  hots: x\n")
    init_project(tmp_path)
    result = CliRunner().invoke(app, ["plan", "--project", str(tmp_path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "access_token" in result.output or "hots" in result.output


def test_cli_invalid_yaml_reports_position(tmp_path: Path) -> None:
    (tmp_path / "signalplay.yaml").write_text("version: 1\ncrm: [unclosed\n")
    result = CliRunner().invoke(app, ["mappings", "check", "--project", str(tmp_path)])
    assert result.exit_code == 2
    said = result.output.replace("\n", "")  # the terminal wraps long lines (and long paths)
    assert "signalplay.yaml:3:1:" in said
    assert "invalid YAML" in said


def test_shipped_definitions_load_clean() -> None:
    defs = load_definitions(shipped_mappings())
    assert {t.id for t in defs.triggers.triggers} >= {
        "adoption_drop",
        "support_p1",
        "renewal_checkpoint_60",
    }


def test_broken_trigger_file_reports_every_issue_with_position(tmp_path: Path) -> None:
    init_project(tmp_path)
    path = tmp_path / "mappings" / "triggers.yaml"
    path.write_text(
        path.read_text()
        .replace('when: "open_urgent_tickets >= 1"', 'when: "open_urgnt_tickets >= 1"')
        .replace("play: renewal_plan", "play: renewal_pln")
    )
    with pytest.raises(ConfigError) as info:
        load_definitions(tmp_path / "mappings")
    messages = [str(i) for i in info.value.issues]
    assert any(
        "triggers.yaml:" in m and "unknown field 'open_urgnt_tickets'" in m for m in messages
    )
    assert any("triggers.yaml:" in m and "unknown play 'renewal_pln'" in m for m in messages)
