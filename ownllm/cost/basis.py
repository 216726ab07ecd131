"""What each bill line rests on, as facts: quantities, unit prices, reasons, notes.

Pricers build one of these per line (`Item.basis`); `ownllm.cost.wording` alone turns it into
the sentence the reports show. A kind is one small frozen dataclass; `Basis` is the closed set
of them, and `to_facts` / `from_facts` carry any of them through cost-estimate.json.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

# ----- notes on a price ------------------------------------------------------------------------


class NoteKind(StrEnum):
    OTHER_REGION = "other-region"  # the catalog has no figure for the stack's region
    ESTIMATED = "estimated"  # the catalog row's source says "estimate"


@dataclass(frozen=True)
class PriceNote:
    kind: NoteKind
    price_region: str = ""
    stack_region: str = ""


Notes = tuple[PriceNote, ...]


# ----- priced lines --------------------------------------------------------------------------


class Scaling(StrEnum):
    FIXED = "fixed"
    AUTOSCALING = "autoscaling"
    SCHEDULED = "scheduled"


@dataclass(frozen=True)
class ScheduledAction:
    """A scalable target's scheduled action as the template declares it."""

    schedule: str
    min_capacity: int | None
    max_capacity: int | None
    timezone: str | None = None


class CapacityKind(StrEnum):
    FIXED = "fixed"  # InitialInstanceCount all week
    ALTERNATIVES = "alternatives"  # a count an intrinsic chooses at deploy time
    AUTOSCALING = "autoscaling"  # a scalable target's MinCapacity..MaxCapacity
    SCHEDULED = "scheduled"  # a scalable target with scheduled actions
    MANAGED = "managed"  # the variant's ManagedInstanceScaling


@dataclass(frozen=True)
class CapacityRule:
    """Where a variant's instance bounds come from."""

    kind: CapacityKind
    low: int
    high: int
    target_id: str = ""  # the ScalableTarget that sets them, if one does
    actions: tuple[ScheduledAction, ...] = ()


@dataclass(frozen=True)
class WeeklyBound:
    """Some hours of the week in which a variant runs between `low` and `high` instances."""

    low: int
    high: int
    hours_per_week: float


@dataclass(frozen=True)
class ScaleToZero:
    cold_starts_per_day: float
    wait_s_per_cold_start: float
    scale_in_idle_min: float
    release_min: float


@dataclass(frozen=True)
class InstanceHours:
    """An endpoint variant's instance-hours at one instance type's hourly price."""

    kind: ClassVar[str] = "instance-hours"
    scaling: Scaling
    instance_type: str
    hourly_usd: float
    initial_count: int
    hours_per_day: float
    min_count: int
    max_count: int
    needed: int  # instances the assumed load needs while traffic arrives
    low_usd: float
    high_usd: float
    capacity: CapacityRule
    weekly: tuple[WeeklyBound, ...] = ()
    scale_to_zero: ScaleToZero | None = None
    notes: Notes = ()

    @property
    def over_capacity(self) -> bool:
        """The load needs more instances than the variant may ever run."""
        return self.needed > self.max_count


@dataclass(frozen=True)
class InstanceChoice:
    instance_type: str
    hourly_usd: float


@dataclass(frozen=True)
class ChosenAtDeploy:
    """A variant whose instance type or count an intrinsic picks at deploy time."""

    kind: ClassVar[str] = "chosen-at-deploy"
    choices: tuple[InstanceChoice, ...]
    min_count: int
    max_count: int
    capacity: CapacityRule
    low_usd: float
    high_usd: float
    notes: Notes = ()


@dataclass(frozen=True)
class DataProcessed:
    kind: ClassVar[str] = "data-processed"
    requests: float
    bytes_each: int
    gb: float
    unit_usd: float
    notes: Notes = ()


@dataclass(frozen=True)
class DataTransferOut:
    kind: ClassVar[str] = "data-transfer-out"
    responses: float
    bytes_each: int
    gb: float
    unit_usd: float
    notes: Notes = ()


class ApiKind(StrEnum):
    REST = "rest"
    HTTP = "http"


@dataclass(frozen=True)
class ApiRequests:
    kind: ClassVar[str] = "api-requests"
    api: ApiKind
    requests: float
    unit_usd: float
    notes: Notes = ()


class Trigger(StrEnum):
    REQUEST_PATH = "request-path"
    AUTHORIZER = "authorizer"
    SCHEDULED = "scheduled"


@dataclass(frozen=True)
class Invocation:
    """Why a function runs and how long each run is taken to last."""

    trigger: Trigger
    assumed_s: float | None = None  # a run's assumed length (authorizer, schedule)
    capped_at_timeout_s: float | None = None  # the request-path duration was cut to this timeout


@dataclass(frozen=True)
class FunctionUsage:
    kind: ClassVar[str] = "function-usage"
    invocations: float
    seconds: float
    memory_mb: float
    architecture: str
    duration_usd: float  # per GB-second
    request_usd: float  # per 1M requests
    invocation: Invocation
    notes: Notes = ()


@dataclass(frozen=True)
class EmittedMetrics:
    """Custom metrics a function emits at run time (EMF)."""

    kind: ClassVar[str] = "emitted-metrics"
    always: int
    at_most: int
    unit_usd: float
    notes: Notes = ()


@dataclass(frozen=True)
class FilterMetrics:
    """Custom metrics a log metric filter publishes."""

    kind: ClassVar[str] = "filter-metrics"
    count: int
    unit_usd: float
    notes: Notes = ()


class AlarmResolution(StrEnum):
    STANDARD = "standard"
    HIGH = "high-resolution"


@dataclass(frozen=True)
class AlarmMetrics:
    kind: ClassVar[str] = "alarm-metrics"
    count: int
    unit_usd: float
    resolution: AlarmResolution
    period_s: float
    notes: Notes = ()


class Fee(StrEnum):
    COMPOSITE_ALARM = "composite-alarm"
    DASHBOARD = "dashboard"
    KMS_KEY = "kms-key"
    SECRET = "secret"


@dataclass(frozen=True)
class MonthlyFee:
    kind: ClassVar[str] = "monthly-fee"
    fee: Fee
    unit_usd: float
    notes: Notes = ()


@dataclass(frozen=True)
class ScheduledInvocations:
    kind: ClassVar[str] = "scheduled-invocations"
    per_day: float
    expression: str
    unit_usd: float
    notes: Notes = ()


class LogSource(StrEnum):
    FUNCTION = "function"
    ENDPOINT = "endpoint"
    ACCESS_LOG = "access-log"


@dataclass(frozen=True)
class LogWriter:
    source: LogSource
    per_day: float
    bytes_each: int
    writer_id: str = ""  # the function or endpoint; none for the API's access log


class ImplicitGroup(StrEnum):
    """A log group the service creates on first write, absent from the template."""

    SAGEMAKER = "sagemaker"
    LAMBDA = "lambda"


@dataclass(frozen=True)
class LogVolume:
    kind: ClassVar[str] = "log-volume"
    writers: tuple[LogWriter, ...]
    gb_per_day: float
    ingestion_usd: float
    stored_gb: float
    storage_usd: float
    retention_days: float | None  # None: the group never expires its events
    kept_days: float  # what storage is priced at
    implicit: ImplicitGroup | None = None
    notes: Notes = ()


# ----- lines with no charge ------------------------------------------------------------------


class NoChargeReason(StrEnum):
    PLAIN = "plain"
    BILLED_ON_API_LINE = "billed-on-api-line"
    BILLED_ON_FUNCTION_LINE = "billed-on-function-line"
    AUTHORIZER = "authorizer"
    MODEL_DEFINITION = "model-definition"
    INFERENCE_COMPONENT = "inference-component"
    SCALING = "scaling"
    SNS_TOPIC = "sns-topic"
    BUDGET = "budget"
    SUBSCRIPTION_FILTER = "subscription-filter"
    EVENTS_RULE = "events-rule"
    PUBLIC_CERTIFICATE = "public-certificate"
    CDK_HELPER = "cdk-helper"
    CDK_BUCKET_DEPLOYMENT = "cdk-bucket-deployment"
    ENDPOINT_CONFIG_USED = "endpoint-config-used"
    ENDPOINT_CONFIG_UNUSED = "endpoint-config-unused"
    DEPLOY_TIME_FUNCTION = "deploy-time-function"
    LOG_GROUP_WITHOUT_WRITER = "log-group-without-writer"


@dataclass(frozen=True)
class NoCharge:
    kind: ClassVar[str] = "no-charge"
    reason: NoChargeReason


@dataclass(frozen=True)
class NestedStack:
    kind: ClassVar[str] = "nested-stack"
    stack: str
    logical_id: str


# ----- lines that cannot be priced -----------------------------------------------------------


class UnpricedReason(StrEnum):
    BUCKET_CONTENTS = "bucket-contents"
    REPOSITORY_IMAGES = "repository-images"
    QUEUE_MESSAGES = "queue-messages"
    TABLE_REQUESTS = "table-requests"
    CUSTOM_RESOURCE = "custom-resource"
    NO_TRIGGER = "no-trigger"
    NESTED_TEMPLATE_MISSING = "nested-template-missing"
    NO_INSTANCE_TYPE = "no-instance-type"


@dataclass(frozen=True)
class Unpriced:
    kind: ClassVar[str] = "unpriced"
    reason: UnpricedReason


@dataclass(frozen=True)
class NoPricer:
    kind: ClassVar[str] = "no-pricer"
    resource_type: str


@dataclass(frozen=True)
class NoPrice:
    """The catalog has no row for an item, in any region."""

    kind: ClassVar[str] = "no-price"
    item: str


@dataclass(frozen=True)
class NotInCatalog:
    """Instance types the catalog lacks in the stack's region."""

    kind: ClassVar[str] = "not-in-catalog"
    missing: tuple[str, ...]
    region: str
    choices: tuple[str, ...] = ()  # every type an intrinsic chooses between, when it does


@dataclass(frozen=True)
class UnknownSchedule:
    kind: ClassVar[str] = "unknown-schedule"
    expression: str | None


@dataclass(frozen=True)
class MessageApi:
    """A WebSocket API: billed per message and connection-minute."""

    kind: ClassVar[str] = "message-api"
    protocol: str


@dataclass(frozen=True)
class StageCache:
    kind: ClassVar[str] = "stage-cache"
    size_gb: str


class VariantProblem(StrEnum):
    CONFIG_MISSING = "config-missing"
    SERVERLESS = "serverless"
    INSTANCE_TYPE_UNKNOWN = "instance-type-unknown"
    COUNT_MISSING = "count-missing"
    COUNT_UNKNOWN = "count-unknown"
    BOUND_UNKNOWN = "bound-unknown"


@dataclass(frozen=True)
class UnreadableVariant:
    """An endpoint variant the template does not say enough about to price."""

    kind: ClassVar[str] = "unreadable-variant"
    problem: VariantProblem
    target_id: str = ""  # for BOUND_UNKNOWN: the scalable target and its property
    prop: str = ""


@dataclass(frozen=True)
class Recorded:
    """A sentence read back from an estimate file written before bases were kept as facts."""

    kind: ClassVar[str] = "recorded"
    text: str


Basis = (
    InstanceHours
    | ChosenAtDeploy
    | DataProcessed
    | DataTransferOut
    | ApiRequests
    | FunctionUsage
    | EmittedMetrics
    | FilterMetrics
    | AlarmMetrics
    | MonthlyFee
    | ScheduledInvocations
    | LogVolume
    | NoCharge
    | NestedStack
    | Unpriced
    | NoPricer
    | NoPrice
    | NotInCatalog
    | UnknownSchedule
    | MessageApi
    | StageCache
    | UnreadableVariant
    | Recorded
)
KINDS: dict[str, type[Basis]] = {cls.kind: cls for cls in get_args(Basis)}


# ----- what reading a template warns about ---------------------------------------------------


@dataclass(frozen=True)
class UnaveragedSchedule:
    """A schedule that fires a function but does not repeat weekly."""

    stack: str
    function_id: str
    expression: str


@dataclass(frozen=True)
class InvertedBounds:
    """A scalable target whose MinCapacity is above its MaxCapacity."""

    stack: str
    target_id: str
    low: int
    high: int


@dataclass(frozen=True)
class IgnoredAction:
    """A scheduled action whose schedule has no weekly average; `reason` is the parser's message."""

    stack: str
    target_id: str
    reason: str


TemplateWarning = UnaveragedSchedule | InvertedBounds | IgnoredAction


# ----- JSON form -----------------------------------------------------------------------------


def to_facts(basis: Basis) -> dict[str, Any]:
    """The basis as plain JSON values, tagged with its kind."""
    return {"kind": basis.kind, **{f.name: _plain(getattr(basis, f.name)) for f in dataclasses.fields(basis)}}


def _plain(value: object) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def from_facts(doc: dict[str, Any]) -> Basis:
    """The basis `to_facts` wrote; ValueError naming the kind when it is not one."""
    kind = doc.get("kind")
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"basis_facts kind {kind!r} is not one of {', '.join(sorted(KINDS))}")
    made: Basis = _typed(cls, doc)
    return made


def _typed(hint: Any, value: Any) -> Any:
    """`value` from JSON, rebuilt as the type the dataclass field declares."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        return None if value is None else _typed(options[0], value)
    if origin is tuple:
        return tuple(_typed(get_args(hint)[0], v) for v in value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ValueError(f"basis_facts {hint.__name__} is not an object: {value!r}")
        names = [f.name for f in dataclasses.fields(hint)]
        missing = [n for n in names if n not in value]
        if missing:
            raise ValueError(f"basis_facts {hint.__name__} lacks {', '.join(missing)}")
        hints = get_type_hints(hint)
        return hint(**{n: _typed(hints[n], value[n]) for n in names})
    if hint is float:
        return float(value)
    if hint is int or hint is str:
        if not isinstance(value, hint) or isinstance(value, bool):
            raise ValueError(f"basis_facts value {value!r} is not {hint.__name__}")
        return value
    return value
