"""One namespace: the wheel installs `signalplay` and nothing else at the top level, with the
connectors as `signalplay.connectors`, the shipped mappings and the migrations inside it, and
every package of the tree listed in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _listed() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def _tree() -> set[str]:
    found = {"signalplay.connectors"}
    roots = (
        (ROOT / "src" / "signalplay", "signalplay"),
        (ROOT / "connectors", "signalplay.connectors"),
        (ROOT / "mappings", "signalplay._shipped.mappings"),
    )
    for base, prefix in roots:
        found.add(prefix)
        for path in base.rglob("*"):
            if path.is_dir() and path.name not in {"__pycache__", "connectors"}:
                found.add(".".join((prefix, *path.relative_to(base).parts)))
    return found


def test_every_package_of_the_tree_is_listed() -> None:
    assert _tree() == _listed()


@pytest.mark.slow
def test_the_wheel_installs_only_signalplay(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("signalplay-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    tops = {name.split("/", 1)[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"signalplay"}
    assert "signalplay/connectors/hubspot/__init__.py" in names
    assert "signalplay/_shipped/mappings/triggers.yaml" in names
    assert "signalplay/_shipped/mappings/schema/mapping.schema.json" in names
    assert "signalplay/store/migrations/script.py.mako" in names
    assert "signalplay/sandbox/data/stripe_billing_fixtures.json" in names
    assert "signalplay/py.typed" in names
    text = entry_points.decode()
    assert "hubspot = signalplay.connectors.hubspot:HubSpotConnector" in text
    assert "signalplay = signalplay.cli:main" in text
