"""The layers contract holds the flow's direction: planted upward imports fail it.

The source tree is copied (with the connectors folder its symlink points at) and put first on
the path, one import is planted, and `lint-imports` runs on the copy with the project's own
contracts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _lint_with(tmp_path: Path, module: str, planted: str) -> subprocess.CompletedProcess[str]:
    shutil.copytree(ROOT / "src", tmp_path / "src", symlinks=True)
    shutil.copytree(ROOT / "connectors", tmp_path / "connectors")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / module
    target.write_text(target.read_text() + f"\n{planted}  # planted by the test\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        (
            "signalplay/evaluate/health.py",
            "import signalplay.jobs.runs",
            "the flow's layers",
        ),
        ("signalplay/store/runs.py", "import signalplay.evaluate.episodes", "the flow's layers"),
        ("signalplay/lang/expr.py", "import signalplay.definitions.schema", "the flow's layers"),
        ("signalplay/models.py", "import signalplay.writeback.crmschema", "the kernel imports"),
        ("signalplay/plays/actions.py", "import signalplay.connectors.hubspot", "the core imports"),
        (
            "signalplay/connectors/stripe/__init__.py",
            "import signalplay.store",
            "connectors use only",
        ),
    ],
    ids=[
        "stage-to-jobs",
        "store-to-stage",
        "lang-to-definitions",
        "kernel",
        "core-to-connector",
        "connector-to-store",
    ],
)
def test_a_planted_import_breaks_its_contract(
    tmp_path: Path, module: str, planted: str, broken: str
) -> None:
    if module.startswith("signalplay/connectors/"):
        # the symlink points at the copied connectors folder: plant it there
        module = "../connectors/" + module.removeprefix("signalplay/connectors/")
    result = _lint_with(tmp_path, module, planted)
    assert result.returncode != 0, result.stdout[-2000:]
    broken_lines = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert [line for line in broken_lines if line.startswith(broken)], result.stdout[-3000:]


def test_the_unplanted_copy_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint_with(tmp_path, "signalplay/types.py", "")
    assert result.returncode == 0, result.stdout[-3000:]
