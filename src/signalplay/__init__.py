"""signalplay turns customer signals into Customer Success plays inside the CRM.

The front door: settings, the errors, the models and protocols a connector author needs, and
the use cases (`open_context`, then `pull`, `build_profiles`, `assess`, `plan`, `apply`, or
all of them as `run`). Names resolve on first use, so `import signalplay` loads nothing else:
a connector importing `signalplay.errors` does not pull in the evaluator.

The flow lives in stage packages, in the order data moves: `lang` and `definitions` (the
RevOps files), `profile` (MAP), `evaluate` (EVALUATE), `plays` (DECIDE), `writeback` (PLAN),
`measure` (MEASURE), with `store` below them, `jobs` (every use case once) above them, and
`cli` and `worker` as the edges.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from signalplay.errors import (
        AuthError,
        ConfigError,
        FatalError,
        Issue,
        RateLimitedError,
        RetriableError,
        SignalplayError,
        SkippableRecordError,
        SyncError,
    )
    from signalplay.jobs import (
        Context,
        apply,
        assess,
        backfill,
        build_profiles,
        crm_check,
        crm_setup,
        open_context,
        plan,
        pull,
        run,
    )
    from signalplay.models import (
        CrmField,
        CrmMetadata,
        Fact,
        FieldSpec,
        Page,
        RecordRef,
        SourceRecord,
        StreamSpec,
        WriteAction,
        WriteOp,
        WriteResult,
    )
    from signalplay.protocols import Connector, CrmConnector, EventSink
    from signalplay.settings import Project, Settings, load_project

try:
    __version__ = version("signalplay")
except PackageNotFoundError:  # a source tree on the path, not installed
    __version__ = "0+unknown"

_HOME = {
    "signalplay.errors": (
        "AuthError",
        "ConfigError",
        "FatalError",
        "Issue",
        "RateLimitedError",
        "RetriableError",
        "SignalplayError",
        "SkippableRecordError",
        "SyncError",
    ),
    "signalplay.models": (
        "CrmField",
        "CrmMetadata",
        "Fact",
        "FieldSpec",
        "Page",
        "RecordRef",
        "SourceRecord",
        "StreamSpec",
        "WriteAction",
        "WriteOp",
        "WriteResult",
    ),
    "signalplay.protocols": ("Connector", "CrmConnector", "EventSink"),
    "signalplay.settings": ("Project", "Settings", "load_project"),
    "signalplay.jobs": (
        "Context",
        "apply",
        "assess",
        "backfill",
        "build_profiles",
        "crm_check",
        "crm_setup",
        "open_context",
        "plan",
        "pull",
        "run",
    ),
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}

__all__ = [
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


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (PEP 562)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'signalplay' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
