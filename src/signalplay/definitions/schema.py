"""The RevOps file formats: mappings, signals, health scorecard, triggers, plays, write-back.

Every model forbids unknown keys, so a typo is an error with its file position. Imports: pydantic.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from signalplay.lang.calendar import Calendar
from signalplay.lang.transforms import PATH_PATTERN as _PATH_PATTERN

IDENT = r"^[a-z][a-z0-9_]{0,62}$"
PATH_PATTERN = _PATH_PATTERN
Ident = Annotated[str, Field(pattern=IDENT)]
Number = StrictInt | StrictFloat

IdentityKind = Literal[
    "crm_id", "domain", "stripe_customer_id", "zendesk_org_id", "zendesk_ticket_id", "external_id"
]
Cast = Literal["str", "int", "float", "decimal", "bool", "date", "datetime", "money", "minor_units"]
Normalize = Literal["lower", "strip", "domain"]
Aggregate = Literal["count", "sum", "avg", "median", "min", "max", "last", "distinct"]
Reduce = Literal["sum", "min", "max", "count", "distinct", "first", "last", "join"]
ValueKind = Literal["number", "text", "bool", "date", "datetime", "list", "any"]
Role = Literal["admin", "champion", "exec_sponsor", "finance", "other"]
Priority = Literal["low", "medium", "high", "urgent"]
TriggerGroup = Literal[
    "lifecycle",
    "implementation",
    "adoption",
    "feature_activation",
    "support",
    "experience",
    "commercial",
    "stakeholder",
    "renewal",
    "expansion",
]


class Strict(BaseModel):
    """Base of every RevOps model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySpec(Strict):
    """Where a record carries an identity key, and how to normalise it."""

    field: str = Field(min_length=1, pattern=PATH_PATTERN)
    normalize: Normalize | None = None


class IdentitySpec(KeySpec):
    """Which account key a record carries."""

    key: IdentityKind


class Rule(Strict):
    """A title rule: the value when any phrase occurs as whole words (case-insensitive)."""

    contains: tuple[Annotated[str, Field(min_length=1)], ...] = Field(min_length=1)
    value: str | Number | StrictBool


Scalar = str | Number | StrictBool | None


class ValueSpec(Strict):
    """How one value is read from a record: path or expression, then cast, normalise, map."""

    from_: tuple[str, ...] | None = Field(default=None, alias="from", min_length=1)
    expr: str | None = None
    reduce: Reduce | None = None
    cast: Cast | None = None
    timezone: str | None = None
    epoch: Literal["s", "ms"] | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    currency_from: str | None = Field(default=None, pattern=PATH_PATTERN)
    normalize: Normalize | None = None
    map: dict[str, Scalar] | None = None
    rules: tuple[Rule, ...] | None = None
    default: Scalar = None

    @field_validator("from_", mode="before", json_schema_input_type=str | list[str])
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("from_")
    @classmethod
    def _paths(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for path in value or ():
            if not re.fullmatch(PATH_PATTERN, path):
                msg = (
                    f"not a field path: {path!r} (dots between nested keys, [0] for an item, "
                    "[*] for every item of a list, e.g. items.data[*].quantity)"
                )
                raise ValueError(msg)
        return value


class FieldSpec(ValueSpec):
    """How one profile field is computed from a stream's records."""

    first_of: tuple[ValueSpec, ...] | None = Field(default=None, min_length=1)
    aggregate: Aggregate | None = None
    where: str | None = None
    window_days: int | None = Field(default=None, ge=1, le=3650)
    offset_days: int = Field(default=0, ge=0, le=3650)
    type: ValueKind | None = None
    values: tuple[str, ...] | None = None
    description: str = ""


class MappingFile(Strict):
    """One source stream normalised into profile facts."""

    version: Literal[1]
    source: Ident
    stream: Annotated[str, Field(min_length=1)]
    master: StrictBool = False
    identity: tuple[IdentitySpec, ...]
    provides: dict[IdentityKind, KeySpec] = {}
    record_id: str = "id"
    date_field: str | None = Field(default=None, pattern=PATH_PATTERN)
    timezone: str | None = None
    collect: Ident | None = None
    description: str = ""
    fields: dict[Ident, FieldSpec]

    @field_validator(
        "identity", mode="before", json_schema_input_type=IdentitySpec | list[IdentitySpec]
    )
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, dict) else value


class SignalsFile(Strict):
    """Derived profile fields, each an expression over fields defined before it."""

    version: Literal[1]
    signals: dict[Ident, str]


class Band(Strict):
    """A measure scores `score` when its value is below `below` (the last band has no bound)."""

    below: Number | None = None
    score: Number = Field(ge=0, le=100)


class Measure(Strict):
    """One measure of the health scorecard."""

    id: Ident
    value: str
    # 0: measured and shown among the drivers, not weighed (`tune health` proposes it for a
    # measure that does not predict churn)
    weight: Number = Field(ge=0)
    bands: tuple[Band, ...] = Field(min_length=1)
    label: str = ""


Match = dict[Ident, Annotated[str, Field(min_length=1)] | tuple[str, ...]]


class WeightOverride(Strict):
    """Measure weights for the accounts of a segment (the most specific match wins)."""

    match: Match = Field(min_length=1)
    weights: dict[Ident, Annotated[float, Field(ge=0)]] = Field(min_length=1)


class HealthFile(Strict):
    """The health scorecard: weighted measures, weights per segment, and the score bands."""

    version: Literal[1]
    green_at: Number = 70
    yellow_at: Number = 40
    trend_days: int = Field(default=7, ge=1, le=90)
    measures: tuple[Measure, ...] = Field(min_length=1)
    segments: tuple[WeightOverride, ...] = ()

    @model_validator(mode="after")
    def _some_weight(self) -> HealthFile:
        if not any(m.weight > 0 for m in self.measures):
            raise ValueError("at least one measure needs a weight above 0")
        return self


class DimensionValue(Strict):
    """One value of a segment dimension: the first whose `when` holds (none: the default)."""

    id: Ident
    when: str | None = None
    label: str = ""


class Stage(Strict):
    """A lifecycle stage: entered when `enter` holds, kept until `exit` holds."""

    id: Ident
    enter: str | None = None
    exit: str | None = None
    label: str = ""


class SegmentsFile(Strict):
    """How accounts are segmented: stage, risk from the health band, and named dimensions."""

    version: Literal[1]
    dimensions: dict[Ident, tuple[DimensionValue, ...]] = {}
    stages: tuple[Stage, ...] = Field(default=(Stage(id="active"),), min_length=1)
    risk: dict[Literal["green", "yellow", "red"], Ident] = {
        "green": "low",
        "yellow": "medium",
        "red": "high",
    }


SLA_PATTERN = r"^((\d+)(h|bh|d|bd)|by [a-z][a-z0-9_]*( - \d+d)?)$"
OWNER_PATTERN = r"^(account|sales|escalation|queue:[a-z][a-z0-9_]*|role:[a-z][a-z0-9_]*)$"
SLA = Annotated[str, Field(pattern=SLA_PATTERN)]
OwnerRule = Annotated[str, Field(pattern=OWNER_PATTERN)]


class ThresholdOverride(Strict):
    """Thresholds (and optionally SLA and priority) for the accounts of a segment."""

    match: Match = Field(min_length=1)
    thresholds: dict[Ident, Number] = {}
    sla: SLA | None = None
    priority: Priority | None = None


class Trigger(Strict):
    """A named rule: when its condition becomes true for an account, an episode opens."""

    id: Ident
    group: TriggerGroup
    name: str = Field(min_length=1)
    why: str = ""
    when: str
    thresholds: dict[Ident, Number] = {}
    segments: tuple[ThresholdOverride, ...] = ()
    priority: Priority = "medium"
    owner: OwnerRule = "account"
    sla: SLA
    play: Ident
    cooldown_days: int = Field(default=14, ge=0, le=365)
    close_when: str | None = None
    enabled: StrictBool = True
    # Ids this trigger had before: its open episodes (and their CRM tasks) carry on under the
    # new id instead of closing as retired.
    renamed_from: tuple[Ident, ...] = ()


class TriggersFile(Strict):
    """The trigger library."""

    version: Literal[1]
    triggers: tuple[Trigger, ...]


ActionKind = Literal[
    "task", "meeting", "enablement", "escalation", "sales_task", "sequence", "webhook"
]


class Action(Strict):
    """One step of a play: a CRM task of some kind, a sequence enrollment or an outbound event.

    Subject and body are Jinja2 templates; `audience` picks the contacts by role.
    """

    id: Ident
    kind: ActionKind = "task"
    audience: tuple[Role, ...] = ()
    owner: OwnerRule | None = None
    subject: str | None = Field(default=None, min_length=1, max_length=2000)
    body: str | None = Field(default=None, min_length=1, max_length=20000)
    type: Literal["TODO", "CALL", "EMAIL", "MEETING"] = "TODO"
    sequence: str | None = Field(default=None, min_length=1, max_length=200)
    event: Ident | None = None


class Play(Strict):
    """What to do when a trigger fires: its actions, in order."""

    id: Ident
    name: str = Field(min_length=1)
    actions: tuple[Action, ...] = Field(min_length=1)


class PlaysFile(Strict):
    """The play library, and the content blocks plays assemble by stage and role."""

    version: Literal[1]
    content: dict[Ident, dict[Ident, dict[Ident, Annotated[str, Field(max_length=20000)]]]] = {}
    plays: tuple[Play, ...]


class Suppression(Strict):
    """Triggers whose plays are held back while other episodes are open or a condition holds."""

    id: Ident
    suppress: tuple[Ident, ...] = Field(min_length=1)
    while_open: tuple[Ident, ...] = ()
    when: str | None = None
    reason: str = ""


class Cap(Strict):
    """At most `max` actioned episodes within `days`."""

    max: int = Field(ge=1, le=1000)
    days: int = Field(ge=1, le=365)


class Caps(Strict):
    """Frequency caps per account and per contact."""

    per_account: Cap | None = None
    per_contact: Cap | None = None


class Experiment(Strict):
    """Accounts split by a stable hash between play variants, with a holdout.

    The holdout's episodes are logged but not actioned.
    """

    id: Ident
    trigger: Ident
    variants: dict[Ident, Annotated[float, Field(gt=0)]] = Field(min_length=1)
    holdout_pct: float = Field(default=0, ge=0, lt=100)


class RoutingFile(Strict):
    """Owners' calendars, queues and escalation, and how plays are orchestrated."""

    version: Literal[1]
    calendars: dict[Ident, Calendar] = {"default": Calendar()}
    owner_calendars: dict[Annotated[str, Field(min_length=1)], Ident] = {}
    queues: dict[Ident, Annotated[str, Field(min_length=1)]] = {}
    escalation_owner: str | None = None
    sales_owner_field: Ident = "sales_owner_id"
    consolidate: StrictBool = False
    suppress: tuple[Suppression, ...] = ()
    caps: Caps = Caps()
    experiments: tuple[Experiment, ...] = ()


CLOSURE_REASONS = (
    "false_positive",
    "resolved",
    "adoption_recovered",
    "renewal_risk_reduced",
    "no_response",
    "other",
)


class WritebackFile(Strict):
    """Profile fields written to the CRM account record, and the closure reason codes.

    Account fields map a CRM field to a profile field; CSMs pick a closure reason code when they
    close a signalplay task.
    """

    version: Literal[1]
    # HubSpot property names are lower case; Salesforce custom fields end in __c.
    account_fields: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,99}$")], Ident]
    closure_reasons: tuple[Ident, ...] = Field(default=CLOSURE_REASONS, min_length=1)
