"""Project settings: `signalplay.yaml` overlaid by SIGNALPLAY_* environment variables.

Secrets come only from the environment (or a secrets dir) and stay `SecretStr`. Every error names
the file, line and key. Imports: pydantic, pydantic-settings, definitions.yamlsrc.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from signalplay.definitions.yamlsrc import YamlDoc, read_yaml, validation_issues
from signalplay.errors import ConfigError

CONFIG_FILE = "signalplay.yaml"


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


class Settings(BaseSettings):
    """Everything a run needs to know, validated once at the edge and passed down."""

    model_config = SettingsConfigDict(
        env_prefix="SIGNALPLAY_",
        env_nested_delimiter="__",
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
    shard_size: int = Field(default=5000, ge=1, le=1_000_000)
    max_attempts: int = Field(default=5, ge=1, le=100)  # then an op goes to the dead letters
    # Evaluate as of this moment instead of now (reproducible runs, backtests): SIGNALPLAY_AS_OF.
    as_of: AwareDatetime | None = None
    secret_key: SecretStr | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment overrides the file: that is where secrets and per-host values live."""
        return env_settings, init_settings, file_secret_settings


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


def load_project(root: Path) -> Project:
    """Read `signalplay.yaml` in `root` and overlay the environment; all issues at once."""
    path = root / CONFIG_FILE
    doc = read_yaml(path, display=str(path))
    data: Any = doc.data
    if not isinstance(data, dict):
        raise ConfigError([doc.issue((), "expected a mapping of settings at the top level")])
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(validation_issues(doc, exc)) from None
    return Project(root=root.resolve(), settings=settings, config_doc=doc)
