"""A worker loads the RevOps files again for every task: loading them must not keep anything
of the loads before (PyYAML's constructor, shared, kept every node and the text behind it:
~1.3 MB a load, until the fuzzer's worker was killed for 23 GB)."""

from __future__ import annotations

import gc
import shutil
import tracemalloc
from pathlib import Path

from signalplay.definitions.loader import load_definitions
from signalplay.jobs.scaffold import shipped_mappings


def test_loading_the_definitions_again_and_again_keeps_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "mappings"
    shutil.copytree(shipped_mappings(), folder)
    triggers = folder / "triggers.yaml"
    text = triggers.read_text()
    for _ in range(3):  # caches of what does not change fill up first
        load_definitions(folder)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(10):
            triggers.write_text(f"{text}\n# edit {i}\n")
            load_definitions(folder)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 2_000_000, f"{(after - before) / 1e6:.1f} MB kept by 10 loads"
