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
    assert sorted({o.split(":")[0] for o in openers}) == ["jobs/recording.py", "jobs/sharded.py"]


def _use_cases_of_edges() -> dict[str, object]:
    """What the CLI modules and the worker take from `signalplay.jobs`, by dotted name."""
    import importlib
    import inspect

    found: dict[str, object] = {}
    for path in EDGES:
        tree = ast.parse(path.read_text())
        modules = {"jobs": importlib.import_module("signalplay.jobs")}  # local name → module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "signalplay.jobs"
            ):
                module = importlib.import_module(node.module or "")
                for alias in node.names:
                    thing = getattr(module, alias.name, None) or importlib.import_module(
                        f"{node.module}.{alias.name}"
                    )
                    if inspect.ismodule(thing):
                        modules[alias.asname or alias.name] = thing
                    else:
                        found[f"{node.module}.{alias.name}"] = thing
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
            ):
                module = modules[node.value.id]
                found[f"{module.__name__}.{node.attr}"] = getattr(module, node.attr)
    return {name: thing for name, thing in found.items() if inspect.isfunction(thing)}


def test_edges_render_typed_results_not_dicts() -> None:
    import inspect

    used = _use_cases_of_edges()
    untyped = [
        f"{name} -> {returned}"
        for name, function in sorted(used.items())
        if (returned := str(inspect.signature(function).return_annotation)).startswith(
            ("dict[str, Any]", "tuple[str, dict", "Any", "dict[")
        )
    ]
    assert untyped == []
    names = {name.rsplit(".", 1)[1] for name in used}
    assert {"run", "sync", "preview", "apply_saved", "evaluate_shard", "merge_plan"} <= names
    assert {"write_report", "backtests", "status", "profile"} <= names
