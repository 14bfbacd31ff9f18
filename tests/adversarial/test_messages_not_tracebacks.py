"""A down or misaddressed store, broker, CRM or port: one line naming it, exit 2, in seconds.

Before: a broker or store that was down gave a 400-line or a 45 KB traceback; a wrong CRM host a
`MaxRetryError` after 12 s without the URL; `sandbox serve` on a busy port a traceback; the first
`sync` of a project made by `init` a `FileNotFoundError`; user data with Rich markup or emoji
codes was rendered, not printed.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signalplay.cli import app

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIGNALPLAY_CRM__ACCESS_TOKEN", "pat-unused")
    root = tmp_path / "p"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    return root


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]  # bound, never listening: connections are refused


def _set(root: Path, pattern: str, line: str) -> None:
    config = root / "signalplay.yaml"
    text = config.read_text()
    config.write_text(re.sub(pattern, line, text, count=1, flags=re.MULTILINE))


def _run(*args: str) -> tuple[int, str, float]:
    started = time.perf_counter()
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output, time.perf_counter() - started


def test_a_wrong_crm_host_is_named(project: Path, closed_port: int) -> None:
    _set(project, r"^  host: \S+", f"  host: http://127.0.0.1:{closed_port}")
    code, output, seconds = _run("sync", "crm", "-p", str(project))
    assert code == 2
    assert f"cannot connect to http://127.0.0.1:{closed_port} (connection refused)" in output
    assert "crm.host" in output
    assert "Traceback" not in output
    assert seconds < 10


def test_a_store_that_is_down_is_named_without_its_password(
    project: Path, closed_port: int
) -> None:
    store = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{closed_port}/test"
    _set(project, r"^store: .*$", f"store: {store}")
    code, output, seconds = _run("sync", "crm", "-p", str(project))
    assert code == 2
    assert output.startswith("error: store (postgresql+psycopg://postgres:***@127.0.0.1:")
    assert "hunter2" not in output
    assert "Traceback" not in output
    assert seconds < 15
    _set(project, r"^store: .*$", "store: nosuchdb://x")
    code, output, _ = _run("sync", "crm", "-p", str(project))
    assert code == 2
    assert "store: nosuchdb://x is not a usable database URL" in output


def test_a_broker_that_is_down_is_named(project: Path, closed_port: int) -> None:
    _set(
        project,
        r"^store: .*$",
        f"store: sqlite:///signalplay.db\nbroker: redis://127.0.0.1:{closed_port}/0",
    )
    code, output, seconds = _run("sync", "crm", "-p", str(project))
    assert code == 2
    assert f"error: broker (redis://127.0.0.1:{closed_port}/0) is unavailable" in output
    assert "Traceback" not in output
    assert seconds < 15


def test_a_busy_port_is_named() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, output, _ = _run("sandbox", "serve", "--port", str(port))
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in output
    assert "Traceback" not in output


def test_the_first_sync_of_an_init_project_names_the_missing_file(project: Path) -> None:
    code, output, _ = _run("sync", "usage", "-p", str(project))
    assert code == 2
    flat = " ".join(output.split())
    assert "sources.usage.streams.usage_daily.path" in flat
    assert "data/usage.csv does not exist" in flat


def test_user_data_is_printed_literally(project: Path) -> None:
    code, output, _ = _run("sync", "owner:x:team[bold]", "-p", str(project))
    assert code == 2
    assert "owner:x:team[bold]" in output  # no emoji, no markup applied


def test_progress_stays_on_stderr_and_is_wiped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import os
    import pty
    import subprocess
    import sys

    from signalplay.sandbox.hubspot import HubSpotSandbox
    from signalplay.sandbox.server import serve
    from tests.conftest import TOKEN, make_project

    sandbox = HubSpotSandbox(token=TOKEN)
    with serve(sandbox) as crm:
        root = make_project(tmp_path / "p", sandbox, crm.url, accounts=20)
        leader, follower = pty.openpty()  # stderr is a terminal: progress is shown
        env = {**os.environ, "SIGNALPLAY_CRM__ACCESS_TOKEN": TOKEN, "COLUMNS": "200"}
        done = subprocess.run(
            [sys.executable, "-m", "signalplay", "plan", "-p", str(root), "--json"],
            stdout=subprocess.PIPE,
            stderr=follower,
            env=env,
            timeout=120,
            check=False,
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        os.close(leader)
    assert done.returncode == 0
    assert json.loads(done.stdout)["ops"]  # stdout is the result alone
    assert b"pull crm." in shown  # progress was shown, on stderr
    assert shown.rstrip(b"\r\n").endswith(b"\r\x1b[K")  # and wiped at the end
