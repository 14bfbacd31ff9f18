"""The edges stay thin: no CLI module or Celery task touches the store (it is the use cases'
business, in `jobs/`), and the runs are opened and closed in one place."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "src" / "signalplay"
EDGES = [*sorted((ROOT / "cli").glob("*.py")), ROOT / "worker.py"]


def _store_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = [
        f"{path.name}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "store"
    ]
    found += [
        f"{path.name}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("signalplay.store")
    ]
    return found


def test_no_edge_touches_the_store() -> None:
    assert [use for path in EDGES for use in _store_uses(path)] == []


def test_runs_are_opened_and_closed_in_one_place() -> None:
    openers = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted(ROOT.rglob("*.py"))
        if "store" not in path.parts
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in {"start_run", "finish_run"}
    ]
    # recorded_run opens and closes; the sharded merge closes the run its sync left open
    assert sorted({o.split(":")[0] for o in openers}) == ["jobs/runs.py", "jobs/sharded.py"]
