"""Every file in `broken/` replaces one shipped RevOps file and must yield its exact error.

Each file starts with `# target: NAME` (the shipped file it replaces) and `# expect: …` (the
issue, `file:line:column: field: message`, as `signalplay mappings check` prints it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signalplay.cli import app
from signalplay.definitions.loader import load_definitions
from signalplay.errors import ConfigError
from signalplay.jobs.scaffold import init_project, shipped_mappings

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.yaml"))


def _header(path: Path) -> tuple[str, str]:
    first, second = path.read_text().splitlines()[:2]
    return first.removeprefix("# target: "), second.removeprefix("# expect: ")


def test_broken_suite_has_at_least_25_distinct_cases() -> None:
    expectations = {_header(p)[1] for p in BROKEN}
    assert len(BROKEN) >= 25
    assert len(expectations) >= 25


@pytest.mark.parametrize("broken", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_file_yields_its_exact_position_and_message(
    broken: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, expected = _header(broken)
    shutil.copytree(shipped_mappings(), tmp_path / "mappings")
    shutil.copyfile(broken, tmp_path / "mappings" / target)
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError) as info:
        load_definitions(Path("mappings"))

    shown = [str(i) for i in info.value.issues]
    assert any(s.startswith(f"mappings/{expected}") for s in shown), shown
    # One mistake reads as one error: nothing cascades into the files that use its fields.
    assert all(i.file == f"mappings/{target}" for i in info.value.issues[:1]), shown


@pytest.mark.parametrize("broken", BROKEN[::6], ids=[p.stem for p in BROKEN[::6]])
def test_mappings_check_cli_exits_2_with_the_error_and_no_traceback(
    broken: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, expected = _header(broken)
    init_project(tmp_path)
    shutil.copyfile(broken, tmp_path / "mappings" / target)
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(app, ["mappings", "check", "-p", "."], terminal_width=400)

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"mappings/{expected}" in " ".join(result.output.split())
