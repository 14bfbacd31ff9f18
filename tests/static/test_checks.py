"""The project's own static checks run in the suite, so CI enforces them: lint, format, types,
and the import contracts (the core never imports a connector, the evaluator stays pure)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", "--no-cache", "--quiet", "."),
        ("ruff", "format", "--no-cache", "--check", "--quiet", "."),
        ("lint-imports",),
        ("mypy",),
    ],
    ids=["ruff-check", "ruff-format", "import-contracts", "mypy-strict"],
)
def test_static_check_passes(command: tuple[str, ...]) -> None:
    result = _run(*command)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_core_import_leaves_sdks_and_celery_unloaded() -> None:
    code = (
        "import sys, signalplay.jobs, signalplay.cli;"
        "bad = sorted(m for m in ('httpx', 'celery', 'hubspot', 'simple_salesforce', 'connectors')"
        " if m in sys.modules); print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
