"""Hostile files cost bounded time and memory, stay inside the project and are never quoted.

Before: an 11 KB YAML alias bomb grew `mappings check` past 1 GB; allowed templates (`center` with
a huge width, chained `replace`, nested loops over long strings) took seconds and gigabytes per
render; a `files:` path anywhere on disk was read, and DuckDB's error quoted its first line; one
non-UTF-8 row failed the whole CSV stream.
"""

from __future__ import annotations

import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from signalplay.connectors.files import FilesConnector, FilesSettings
from signalplay.connectors.sql import SqlConnector, SqlSettings
from signalplay.errors import ConfigError, FatalError
from signalplay.lang.templates import check_template, render
from signalplay.lang.yamlsrc import parse_yaml

BOMB = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
)
UNTIL = datetime(2026, 12, 1, tzinfo=UTC)


def _bounded(fn: object) -> tuple[float, float]:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        fn()  # type: ignore[operator]
    finally:
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return seconds, peak / 1e6


def test_a_yaml_alias_bomb_is_refused_with_its_line() -> None:
    assert len(BOMB) < 2_000  # 9**10 nodes once expanded

    def parse() -> None:
        with pytest.raises(ConfigError) as caught:
            parse_yaml(BOMB, path="mappings/triggers.yaml")
        (issue,) = caught.value.issues
        assert issue.file == "mappings/triggers.yaml"
        assert issue.line is not None
        assert "alias" in issue.message

    seconds, megabytes = _bounded(parse)
    assert seconds < 10
    assert megabytes < 200


def test_a_few_aliases_still_work() -> None:
    doc = parse_yaml("base: &b {x: 1}\none: *b\ntwo: *b\n", path="f.yaml")
    assert doc.data == {"base": {"x": 1}, "one": {"x": 1}, "two": {"x": 1}}


@pytest.mark.parametrize(
    ("template", "refused"),
    [
        ("{{ 'x'.center(10**9) }}", "str.center()"),
        ("{{ name|center(width) }}", "center filter"),
        ("{% set s = 'a'*5000 %}{{ s.replace('a', s).replace('a', s) }}", "str.replace()"),
        ("{% set s = 'a'*5000 %}{{ s|replace('a', s) }}", "replace filter"),
        ("{{ 'a\\nb'|indent(width) }}", "indent filter"),
        ("{% set s = 'a'*9000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}", "loops"),
        ("{{ ', '.join(['x' * 9000] * 1000) }}", "str.join()"),
    ],
)
def test_templates_have_a_render_budget(template: str, refused: str) -> None:
    out = ""

    def go() -> None:
        nonlocal out
        out = render(template, {"name": "Acme", "width": 10**9})

    seconds, megabytes = _bounded(go)
    assert out.startswith("[template error:")
    assert refused in out
    assert seconds < 2
    assert megabytes < 50


def test_a_width_no_render_could_afford_is_caught_by_the_check() -> None:
    assert "wider than a render may make" in (check_template("{{ x|center(10000000) }}") or "")
    assert check_template("{{ x|center(40) }}") is None
    assert render("{% for c in cs %}{{ loop.index }}{{ c }} {% endfor %}", {"cs": "ab"}) == "1a 2b "


def test_source_files_stay_in_the_project(tmp_path: Path) -> None:
    outside = tmp_path / "secret.csv"
    outside.write_text("id,password\n1,hunter2\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "link.csv").symlink_to(outside)
    for path in (str(outside), "../secret.csv", "link.csv"):
        settings = FilesSettings(streams={"s": {"path": path}})
        with pytest.raises(ConfigError) as caught:
            FilesConnector(settings, source="usage", root=project)
        message = str(caught.value)
        assert "sources.usage.streams.s.path" in message
        assert "outside the project" in message
        assert "hunter2" not in message
    with pytest.raises(ConfigError):
        SqlConnector(SqlSettings(streams={"s": {"files": "../*.csv", "key": ["id"]}}), root=project)
    allowed = FilesConnector(
        FilesSettings(streams={"s": {"path": str(outside)}}),
        root=project,
        allowed_paths=(str(tmp_path),),
    )
    (page,) = allowed.read("s", cursor=None, until=UNTIL)
    assert [r.record_id for r in page.records] == ["1"]


def test_duckdb_errors_never_quote_the_file(tmp_path: Path) -> None:
    (tmp_path / "usage.parquet").write_text("root:x:0:0:root:/root:/bin/bash\n")
    connector = SqlConnector(
        SqlSettings(streams={"s": {"files": "usage.parquet", "key": ["id"]}}), root=tmp_path
    )
    with pytest.raises(FatalError) as caught:
        list(connector.read("s", cursor=None, until=UNTIL))
    assert "root:x:0:0" not in str(caught.value)
    assert "usage.parquet" in str(caught.value)


def test_one_row_that_is_not_utf8_is_quarantined_and_the_rest_read(tmp_path: Path) -> None:
    (tmp_path / "usage.csv").write_bytes(b"id,name\n1,ok\n2,caf\xe9\n3,fine\n")
    connector = FilesConnector(FilesSettings(streams={"s": {"path": "usage.csv"}}), root=tmp_path)
    (page,) = connector.read("s", cursor=None, until=UNTIL)
    assert [r.record_id for r in page.records] == ["1", "3"]
    ((where, reason, payload),) = page.quarantined
    assert (where, reason) == ("usage.csv:3", "not UTF-8 text")
    assert payload["name"] == "caf\ufffd"


def test_a_missing_source_file_names_its_setting(tmp_path: Path) -> None:
    connector = FilesConnector(
        FilesSettings(streams={"usage_daily": {"path": "data/usage.csv"}}),
        source="usage",
        root=tmp_path,
    )
    with pytest.raises(ConfigError) as caught:
        list(connector.read("usage_daily", cursor=None, until=UNTIL))
    message = str(caught.value)
    assert "sources.usage.streams.usage_daily.path" in message
    assert "data/usage.csv" in message
    assert "does not exist" in message
