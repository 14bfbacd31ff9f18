"""Secrets from files: a directory named by SIGNALPLAY_SECRETS_DIR holds one file a secret,
named as its environment variable (a mounted Docker or Kubernetes secret); the environment
wins over a file, and a file's value is redacted like any other secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from signalplay.errors import ConfigError
from signalplay.jobs.scaffold import init_project
from signalplay.ops import logs
from signalplay.settings import load_project


def test_a_secret_file_fills_a_nested_secret_and_is_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init_project(tmp_path / "p")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "SIGNALPLAY_CRM__ACCESS_TOKEN").write_text("pat-from-a-mounted-file\n")
    (secrets / "SIGNALPLAY_WEBHOOK__SECRET").write_text("whsec-from-a-file")
    monkeypatch.setenv("SIGNALPLAY_SECRETS_DIR", str(secrets))
    settings = load_project(tmp_path / "p").settings
    assert (settings.crm.model_extra or {})["access_token"] == "pat-from-a-mounted-file"
    assert settings.webhook is not None
    assert (settings.webhook.model_extra or {})["secret"] == "whsec-from-a-file"
    assert "pat-from-a-mounted-file" not in repr(settings)
    found = logs.secret_values(settings, environ={})
    assert {"pat-from-a-mounted-file", "whsec-from-a-file"} <= found

    monkeypatch.setenv("SIGNALPLAY_CRM__ACCESS_TOKEN", "pat-from-the-environment")
    settings = load_project(tmp_path / "p").settings
    assert (settings.crm.model_extra or {})["access_token"] == "pat-from-the-environment"


def test_a_missing_secrets_dir_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init_project(tmp_path / "p")
    monkeypatch.setenv("SIGNALPLAY_SECRETS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"SIGNALPLAY_SECRETS_DIR: .*no such directory"):
        load_project(tmp_path / "p")
