"""A worker opens the project for every task: the RevOps files are loaded once and kept while
they stay the same, and read again as soon as one changes (an edit, a `git pull`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from signalplay.definitions.loader import LOADED_KEEP, load_definitions_cached
from signalplay.errors import ConfigError
from signalplay.jobs.scaffold import shipped_mappings


def test_unchanged_files_are_loaded_once_and_an_edit_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "mappings"
    shutil.copytree(shipped_mappings(), folder)
    first = load_definitions_cached(folder)
    assert load_definitions_cached(folder) is first

    triggers = folder / "triggers.yaml"
    text = triggers.read_text()
    triggers.write_text(text.replace("sla: 2h", "sla: 3h", 1))
    edited = load_definitions_cached(folder)
    assert edited is not first
    slas = {t.sla for t in edited.triggers.triggers} - {t.sla for t in first.triggers.triggers}
    assert slas == {"3h"}

    writeback = folder / "writeback.yaml"
    good = writeback.read_text()
    writeback.write_text("version: [")  # a broken edit raises, and is not kept
    with pytest.raises(ConfigError, match="writeback"):
        load_definitions_cached(folder)
    with pytest.raises(ConfigError, match="writeback"):
        load_definitions_cached(folder)
    writeback.write_text(good)
    assert load_definitions_cached(folder) is edited  # the same bytes again: kept


def test_only_a_few_sets_are_kept(tmp_path: Path) -> None:
    loaded = []
    for i in range(LOADED_KEEP + 1):
        folder = tmp_path / f"project{i}"
        shutil.copytree(shipped_mappings(), folder)
        loaded.append(load_definitions_cached(folder))
    assert load_definitions_cached(tmp_path / f"project{LOADED_KEEP}") is loaded[-1]
    assert load_definitions_cached(tmp_path / "project0") is not loaded[0]  # dropped, reloaded
