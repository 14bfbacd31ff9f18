"""The front door: `signalplay.__all__` is the public surface, sorted and pinned (as httpx's
`tests/test_exported_members.py` does); every name resolves, lazily, without loading the rest."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

import signalplay

PUBLIC = [
    "AuthError",
    "ConfigError",
    "Connector",
    "Context",
    "CrmConnector",
    "CrmField",
    "CrmMetadata",
    "EventSink",
    "Fact",
    "FatalError",
    "FieldSpec",
    "Issue",
    "Page",
    "Project",
    "RateLimitedError",
    "RecordRef",
    "RetriableError",
    "Settings",
    "SignalplayError",
    "SkippableRecordError",
    "SourceRecord",
    "StreamSpec",
    "SyncError",
    "WriteAction",
    "WriteOp",
    "WriteResult",
    "__version__",
    "apply",
    "assess",
    "backfill",
    "build_profiles",
    "crm_check",
    "crm_setup",
    "load_project",
    "open_context",
    "plan",
    "pull",
    "run",
]


def test_all_is_the_pinned_public_surface() -> None:
    assert signalplay.__all__ == PUBLIC


def test_all_is_sorted() -> None:
    assert signalplay.__all__ == sorted(signalplay.__all__)


def test_every_public_name_resolves() -> None:
    missing = [name for name in signalplay.__all__ if getattr(signalplay, name, None) is None]
    assert missing == []


def test_version_is_the_installed_distributions() -> None:
    assert signalplay.__version__ == version("signalplay")


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        signalplay.no_such_name  # noqa: B018 - the access is the test


def test_importing_the_package_loads_no_stage() -> None:
    code = (
        "import sys, signalplay; signalplay.__version__;"
        "print(sorted(m for m in sys.modules if m.startswith('signalplay.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
