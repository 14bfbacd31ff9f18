"""Project settings: `signalplay.yaml` overlaid by SIGNALPLAY_* environment variables.

Secrets come only from the environment (or a secrets dir) and stay `SecretStr`. Every error names
the file, line and key. Imports: pydantic, pydantic-settings, definitions.yamlsrc.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from signalplay.errors import ConfigError, Issue
from signalplay.lang.yamlsrc import YamlDoc, read_yaml, validation_issues

CONFIG_FILE = "signalplay.yaml"
SECRETS_DIR_VARIABLE = "SIGNALPLAY_SECRETS_DIR"  # one file a secret, named as its variable


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceBlock(BaseModel):
    """One configured source; everything but `connector` is checked by that connector."""

    model_config = ConfigDict(extra="allow")

    connector: str

    def __repr_args__(self) -> Any:
        # Connector blocks may carry tokens from the environment: never show their values.
        yield "connector", self.connector
        for key in self.model_extra or {}:
            yield key, "***"


class CrmBlock(SourceBlock):
    """The CRM signalplay reads accounts from and writes plays to."""


class MeasureSettings(_Block):
    """How signalplay measures itself (`measure:` in signalplay.yaml).

    Which profile fields hold an account's value, churn, renewal and adoption, and the windows
    and thresholds of the KPIs, the backtest and the noisy-trigger report.
    """

    outcome_days: int = Field(default=30, ge=1, le=365)  # action-to-outcome window
    horizon_days: int = Field(default=90, ge=1, le=730)  # backtest: churn this soon counts
    grace_days: int = Field(default=30, ge=0, le=365)  # churn this long after renewal: lost
    value_field: str = "arr"
    churn_field: str = "churned_on"
    segment_field: str = "tier"
    renewal_field: str = "renewal_date"
    confidence_field: str = "renewal_confidence"
    confident: tuple[str, ...] = ("high", "medium")
    checkpoints: tuple[int, ...] = (120, 90, 60)
    contract_start_field: str = "contract_start"
    first_value_field: str = "key_feature_days_all"
    adoption_field: str = "active_users_7d"
    adoption_groups: tuple[str, ...] = ("adoption", "feature_activation")
    false_positive_reasons: tuple[str, ...] = ("false_positive",)
    health_field: str = "health_score"
    band_field: str = "health_band"
    # noisy triggers: flagged from this many episodes on
    min_episodes: int = Field(default=10, ge=1)
    max_false_positive_rate: float = Field(default=0.4, ge=0, le=1)
    retire_false_positive_rate: float = Field(default=0.7, ge=0, le=1)


class LockSettings(_Block):
    """One writing run at a time per project: how long a second run waits, how long a lease runs.

    A run renews its lease while it works; a lease lapses only when its holder died without
    giving it back (and at once when that holder was a process of this host).
    """

    wait_seconds: float = Field(default=120, ge=0, le=86_400)
    lease_seconds: float = Field(default=1800, ge=10, le=86_400)
    # A writing run still `running` this long after its start is recorded failed (by `runs`
    # and the watchdog): a run that overran its time limit is not ok, whatever became of it.
    time_limit_minutes: float = Field(default=120, ge=1, le=10_080)


class Settings(BaseSettings):
    """Everything a run needs to know, validated once at the edge and passed down."""

    model_config = SettingsConfigDict(
        env_prefix="SIGNALPLAY_",
        env_nested_delimiter="__",
        secrets_nested_delimiter="__",  # a file SIGNALPLAY_CRM__ACCESS_TOKEN in the secrets dir
        extra="forbid",
        frozen=True,
    )

    version: Literal[1] = 1
    store: str = "sqlite:///signalplay.db"
    broker: str | None = None
    crm: CrmBlock
    sources: dict[str, SourceBlock] = {}
    webhook: SourceBlock | None = None
    definitions: str = "mappings"
    schedule_minutes: int = Field(default=60, ge=1)
    # Accounts per evaluation task: 1,000 keep a shard's working set in the CPU's caches while
    # both cores work (the evaluation 15-20% faster than at 5,000), and a worker at half the
    # memory; a worker keeps the loaded definitions and reads only its shard's ledger, so the
    # tasks' own cost stays small (benchmarks/evaluate.py, benchmarks/scaleout.py).
    shard_size: int = Field(default=1000, ge=1, le=1_000_000)
    max_attempts: int = Field(default=5, ge=1, le=100)  # then an op goes to the dead letters
    # Evaluate as of this moment instead of now (reproducible runs, backtests): SIGNALPLAY_AS_OF.
    as_of: AwareDatetime | None = None
    secret_key: SecretStr | None = None
    measure: MeasureSettings = MeasureSettings()
    lock: LockSettings = LockSettings()
    # Folders outside the project that sources may read (relative to the project, or absolute):
    # a `files:` or `path:` anywhere else is refused.
    allowed_paths: tuple[str, ...] = ()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment overrides the file.

        That is where secrets and per-host values live; then secret files, each named as its
        variable (a mounted Docker or Kubernetes secret).
        """
        return env_settings, init_settings, NestedSecretsSettingsSource(file_secret_settings)


class Project(BaseModel):
    """Where a project lives and its settings."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    root: Path
    settings: Settings
    config_doc: YamlDoc | None = None

    @property
    def definitions_dir(self) -> Path:
        """The folder of mapping, signal, health, trigger and play files."""
        return self.root / self.settings.definitions

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the project root."""
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.root / candidate

    def store_url(self) -> str:
        """The store URL, with a relative SQLite path placed in the project root."""
        url = self.settings.store
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.root / url[len(prefix) :])
        return url


GLOB = frozenset("*?[")


def inside_project(
    root: Path, configured: str, *, setting: str, allowed: Sequence[str] = ()
) -> Path:
    """`configured` (relative to `root`, or absolute) resolved, if it lies in the project.

    Or in one of the `allowed` folders; symlinks and `..` are resolved first, and a glob is
    judged by the folder it starts in. Anything else is a ConfigError naming the setting.
    """
    path = Path(configured).expanduser()
    parts = path.parts
    fixed = next((i for i, part in enumerate(parts) if GLOB & set(part)), len(parts))
    base = Path(*parts[:fixed]) if fixed else Path()
    rest = Path(*parts[fixed:]) if fixed < len(parts) else None
    start = (base if base.is_absolute() else root / base).resolve()
    roots = [root, *((Path(a) if Path(a).is_absolute() else root / a) for a in allowed)]
    for folder in (r.resolve() for r in roots):
        if start == folder or start.is_relative_to(folder):
            return start / rest if rest is not None else start
    raise ConfigError(
        [
            Issue(
                "signalplay.yaml",
                None,
                None,
                setting,
                f"{configured} is outside the project ({root})",
                "move the file into the project, or list its folder under allowed_paths",
            )
        ]
    )


def load_project(root: Path) -> Project:
    """Read `signalplay.yaml` in `root` and overlay the environment; all issues at once."""
    path = root / CONFIG_FILE
    doc = read_yaml(path, display=str(path))
    data: Any = doc.data
    if not isinstance(data, dict):
        raise ConfigError([doc.issue((), "expected a mapping of settings at the top level")])
    secrets_dir = os.environ.get(SECRETS_DIR_VARIABLE)
    if secrets_dir and not Path(secrets_dir).is_dir():
        issue = Issue(SECRETS_DIR_VARIABLE, None, None, "secrets", "no such directory")
        raise ConfigError([issue])
    try:
        settings = Settings(**data, _secrets_dir=secrets_dir or None)
    except ValidationError as exc:
        raise ConfigError(validation_issues(doc, exc)) from None
    return Project(root=root.resolve(), settings=settings, config_doc=doc)
