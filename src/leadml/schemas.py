"""Request and response models of the scoring service.

The lead model is made from the loaded model's feature spec (`lead_model(spec)`, and all
the request types of one spec in `RequestModel.from_spec`): a CRM model reads a lead's
profile fields plus its recent events; a flat model reads the columns of the export it was
trained on. So validation (`parsing.py`), error messages and `/docs` all speak the fields of
the model being served. Nothing here knows the loaded model itself.

Errors name the lead (its index in the request, and its id when it has one) and the field,
and never quote the value sent: it may be an email address or a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    create_model,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from leadml import contract
from leadml.config import STAGE_NAMES
from leadml.contract import EVENT_TYPES
from leadml.errors import LeadmlError
from leadml.features import FeatureSpec
from leadml.grades import ENGAGEMENT_NUMBERS, FIT_LETTERS, MEANING, TEMPERATURES
from leadml.values import binary_word

MAX_EVENTS_PER_LEAD = 10_000
ERROR_STATUSES = {
    400: "The body is empty, not JSON in UTF-8, nested over 200 levels, or not a lead or batch",
    401: "Missing or wrong API key (X-API-Key), when LEADML_API_KEY is set",
    413: "Batch or body over the limit (LEADML_MAX_BATCH, LEADML_MAX_BODY_MB)",
    422: "A lead has a missing, wrongly typed or out-of-range field: see errors[]",
    503: "No model loaded yet",
}
GRID_CELLS = tuple(f + e for f in FIT_LETTERS for e in ENGAGEMENT_NUMBERS)


class RequestError(LeadmlError):
    """A request the client has to fix: status, one-line message, per-lead errors."""

    def __init__(self, status: int, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors or []


# ---- field types -------------------------------------------------------------------------


def _id_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _non_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise PydanticCustomError("blank_id", "blank: an id needs a character other than spaces")
    return value


def _binary(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    answer = binary_word(str(value))
    if answer is None:
        raise ValueError("expected true/false (or yes/no, 1/0)")
    return answer


MAX_ID_LENGTH = 200
LeadId = Annotated[
    # the pattern is documented, and checked by _non_blank: one check and one message for ""
    # and "  ", wherever the id is (the length is checked first, in Rust)
    Annotated[
        str,
        StringConstraints(max_length=MAX_ID_LENGTH),
        Field(json_schema_extra={"pattern": r"\S"}),
    ],
    BeforeValidator(_id_text),
    AfterValidator(_non_blank),
]
# checked in Rust (no Python call per event); zones are turned into UTC when frames are built
Stamp = Annotated[datetime, Field(ge=datetime(1900, 1, 1), le=datetime(2200, 12, 31))]
Text = Annotated[str, StringConstraints(max_length=1000)]
Binary = Annotated[bool, BeforeValidator(_binary)]


_ZONES = " (ISO 8601; UTC when no zone is given)"


def _describe(name: str) -> str:
    return contract.describe("events", name)


class Event(TypedDict):
    """One activity of the lead. Events at or after the lead's `as_of` are not counted.

    A TypedDict rather than a model: a 1,000-lead batch carries some 20,000 events, and
    pydantic validates them into dicts four times faster than into model instances.
    """

    occurred_at: Annotated[Stamp, Field(description=_describe("occurred_at") + _ZONES)]
    event_type: Annotated[Literal[EVENT_TYPES], Field(description=_describe("event_type"))]  # type: ignore[valid-type]
    page: NotRequired[Annotated[Text | None, Field(description=_describe("page"))]]


def lead_model(spec: FeatureSpec) -> type[BaseModel]:
    """The pydantic model of one lead for this feature spec (extra fields are ignored)."""
    config = ConfigDict(extra="allow", populate_by_name=False, title="Lead")
    fields: dict[str, Any] = {}
    if spec.kind == "crm":
        about = {c.name: c.description for c in contract.COLUMNS if c.table == "leads"}
        fields["lead_id"] = (LeadId, Field(description=about["lead_id"]))
        fields["created_at"] = (Stamp | None, Field(None, description=about["created_at"]))
        for name in contract.PROFILE_COLUMNS:
            fields[name] = (Text | None, Field(None, description=about[name]))
        fields["events"] = (
            list[Event],
            Field(
                default_factory=list,
                max_length=MAX_EVENTS_PER_LEAD,
                description=f"Recent activity (the model looks back {spec.observation_days} days)",
            ),
        )
        fields["as_of"] = (
            Stamp | None,
            Field(None, description="Score the lead as of this time (default: now)"),
        )
        return create_model("Lead", __config__=config, **fields)
    if spec.id_column != "row_id":
        fields["lead_id_"] = (LeadId, Field(alias=spec.id_column, description="The lead's id"))
    else:
        fields["row_id"] = (
            LeadId | None,
            Field(
                None,
                description="Optional id, echoed back; left out or null: the lead's "
                "place in the request (1, 2, ...). A blank id is refused, as lead ids are",
            ),
        )
    for i, c in enumerate(spec.columns):
        alias = c.name  # export columns ("Lead Origin") are not Python names
        if c.kind == "numeric":
            number = Annotated[float, Field(allow_inf_nan=False, ge=c.minimum)]
            note = " (never below 0 in training)" if c.minimum is not None else ""
            fields[f"c{i}"] = (number | None, Field(None, alias=alias, description=f"number{note}"))
        elif c.kind == "binary":
            fields[f"c{i}"] = (Binary | None, Field(None, alias=alias, description="yes / no"))
        else:
            shown = ", ".join(c.categories[:12]) + (", ..." if len(c.categories) > 12 else "")
            hint = f"one of {shown} (others are scored as unknown)" if c.categories else "text"
            fields[f"c{i}"] = (Text | None, Field(None, alias=alias, description=hint))
    return create_model("Lead", __config__=config, **fields)


def batch_model(lead: type[BaseModel]) -> type[BaseModel]:
    """A batch; its size limit is a service setting (LEADML_MAX_BATCH), checked on parsing."""
    return create_model(
        "LeadBatch",
        __config__=ConfigDict(extra="ignore"),
        leads=(
            list[lead],  # type: ignore[valid-type]
            Field(min_length=1, description="Up to LEADML_MAX_BATCH leads (default 10,000)"),
        ),
    )


# ---- responses ---------------------------------------------------------------------------


class Reason(BaseModel):
    field: str = Field(description="What drives the score, in business terms")
    value: str = Field(description="The lead's value, e.g. 'VP' or '3 in the last 30 days'")
    points: float = Field(description="Contribution to the score, in score points")


class Reasons(BaseModel):
    """Why the lead has its score: base_score + positive + negative + other == total."""

    base_score: float = Field(description="Score of an average lead, rounded to 0.1")
    positive: list[Reason] = Field(description="Up to 3 reasons that raise the score")
    negative: list[Reason] = Field(description="Up to 3 reasons that lower the score")
    other: float = Field(
        description="Everything not listed: the smaller reasons, and the rounding of the "
        "listed points and of the base score"
    )
    total: float = Field(
        description="What the points add up to, exactly (to 1e-6): the score before rounding "
        "to 1-99, i.e. 100 x probability"
    )
    adds_up_to: Literal["score"] = Field(
        description="The scale of the points: 'score' (score points, see total)"
    )


class GradeReasons(BaseModel):
    """What made the lead's fit grade (or engagement grade): the reasons of that sub-score,
    on its own scale: base_score + positive + negative + other == total."""

    base_score: float = Field(description="Sub-score of an average lead, rounded to 0.1")
    positive: list[Reason] = Field(description="Up to 3 reasons that raise the sub-score")
    negative: list[Reason] = Field(description="Up to 3 reasons that lower the sub-score")
    other: float = Field(
        description="Everything not listed: the smaller reasons, and the rounding of the "
        "listed points and of the base score"
    )
    total: float = Field(
        description="The lead's sub-score: 100 x the fit (or engagement) model's calibrated "
        "probability. Its quarter among the calibration leads gives the grade"
    )
    adds_up_to: Literal["fit", "engagement"] = Field(
        description="Which sub-score the points belong to (not the lead's score)"
    )


_UNKNOWN = " Null when this model cannot tell (the model card's grades.notes say why)."
_OLD = " Null for a model trained before grades."


def _grade(name: str, unknown: str = _UNKNOWN) -> Any:
    return Field(None, description=MEANING[name] + unknown)


class Prediction(BaseModel):
    lead_id: str
    probability: float = Field(
        ge=0, le=1, description="Calibrated chance of converting within the horizon"
    )
    score: int = Field(ge=1, le=99, description="The probability in percent, 1-99")
    band: Literal["SQL", "MQL", "Unqualified"]
    fit: Literal[FIT_LETTERS] | None = _grade("fit")  # type: ignore[valid-type]
    engagement: Literal[ENGAGEMENT_NUMBERS] | None = _grade("engagement")  # type: ignore[valid-type]
    grid: Literal[GRID_CELLS] | None = _grade("grid")  # type: ignore[valid-type]
    temperature: Literal[TEMPERATURES] | None = _grade("temperature")  # type: ignore[valid-type]
    stage: Literal[STAGE_NAMES] | None = _grade("stage")  # type: ignore[valid-type]
    pql: bool | None = _grade(
        "pql", " False when the data has no product usage (the model card says so)." + _OLD
    )
    reasons: Reasons | None = None
    fit_reasons: GradeReasons | None = Field(
        None,
        description="What made the fit grade (with grade_reasons=true; null without a fit model)",
    )
    engagement_reasons: GradeReasons | None = Field(
        None,
        description="What made the engagement grade (with grade_reasons=true; null without an "
        "engagement model)",
    )
    notes: list[str] = Field(default_factory=list)
    model: str
    model_version: str


class LeadError(BaseModel):
    lead: int | None = Field(description="Index of the lead in the request (0 for a single lead)")
    lead_id: str | None = None
    field: str
    message: str


class PredictResponse(BaseModel):
    model: str
    model_version: str
    predictions: list[Prediction]
    rejected: list[LeadError] = Field(
        default_factory=list, description="Only with skip_invalid=true"
    )
    notes: list[str] = Field(default_factory=list)


class ReasonPoints(BaseModel):
    field: str = Field(description="A reason of the score, in business terms")
    points: float = Field(description="Its contribution to the score, in score points")


class StoredScore(BaseModel):
    """One score as the score store kept it (ids, scores, grades and reason points only)."""

    lead_id: str
    scored_at: datetime = Field(description="When the lead was scored (UTC)")
    model: str = Field(description="Registered model name")
    model_version: str
    probability: float = Field(ge=0, le=1, description="Calibrated chance of converting")
    score: int = Field(ge=1, le=99, description="The probability in percent, 1-99")
    band: str = Field(description="SQL, MQL or Unqualified")
    fit: str | None = Field(None, description=MEANING["fit"] + _OLD)
    engagement: str | None = Field(None, description=MEANING["engagement"] + _OLD)
    grid: str | None = Field(None, description=MEANING["grid"] + _OLD)
    temperature: str | None = Field(None, description=MEANING["temperature"] + _OLD)
    stage: str | None = Field(None, description=MEANING["stage"] + _OLD)
    pql: bool | None = Field(None, description=MEANING["pql"] + _OLD)
    reasons: list[ReasonPoints] = Field(
        default_factory=list,
        description="The listed reasons of the score, positive then negative (empty when the "
        "score was asked for without reasons)",
    )


class Trend(BaseModel):
    direction: Literal["rising", "falling", "flat"] = Field(
        description="Where the score is heading over the newest scores"
    )
    slope: float = Field(description="Score points per score (least squares over `over` scores)")
    over: int = Field(description="How many of the newest scores the trend is read over")


class ScoreChange(BaseModel):
    """What moved between two consecutive scores of the lead."""

    since: datetime = Field(description="The older score's time")
    at: datetime = Field(description="The newer score's time")
    score_from: int
    score_to: int
    band_from: str
    band_to: str
    what: list[str] = Field(
        description="In words: a model change, the features whose value changed, the reasons "
        "whose points moved"
    )


class LeadHistoryResponse(BaseModel):
    lead_id: str
    entries: list[StoredScore] = Field(description="The lead's scores, newest first")
    trend: Trend
    changes: list[ScoreChange] = Field(
        description="Between each pair of consecutive entries, newest first"
    )


class ErrorResponse(BaseModel):
    error: str
    errors: list[LeadError] = Field(default_factory=list)


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    model: str
    model_version: str


class Reloaded(BaseModel):
    model: str
    model_version: str
    previous_version: str | None


class TemperatureCard(BaseModel):
    """Hot / warm / cold: the learned cut points and the rule in words."""

    cuts: list[float | None] = Field(
        description="Recent activity (an action in the last 7 days counts twice, in the last "
        "30 once) from which a lead is warm, and hot"
    )
    rule: str = Field("", description="The rule in words, as the model card prints it")


class StageCard(BaseModel):
    """ToFu / MoFu / BoFu: the rule in words."""

    rule: str = Field("", description="Which actions put a lead in which stage")


class GradesCard(BaseModel):
    """How this model grades leads: what each label means, where it is cut, how it did."""

    meaning: dict[str, str] = Field(
        description="One sentence per label (fit, engagement, grid, temperature, stage, pql): "
        "what a marketer reads in it"
    )
    sub_models: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="The fit, engagement and product-usage sub-models: how many features "
        "each reads and its cut points on the raw score (the calibration leads' quarters; "
        "usage: the PQL threshold)",
    )
    temperature: TemperatureCard | None = Field(
        None, description="How hot / warm / cold is read (null: no activity dates in this data)"
    )
    stage: StageCard | None = Field(
        None, description="How the funnel stage is read (null: no stage mapping for this data)"
    )
    notes: dict[str, str] = Field(
        default_factory=dict, description="Labels this model cannot give, and why"
    )
    backtest: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict,
        description="On the test leads: leads and conversion per grid cell, per temperature, "
        "per stage and for PQL (beside the SQL and MQL bands); null conversion: no leads",
    )


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    version: str
    uri: str
    loaded_at: str
    trained_at: str | None = None
    kind: str
    horizon_days: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    thresholds: dict[str, Any] = Field(default_factory=dict)
    band_backtest: list[dict[str, Any]] = Field(default_factory=list)
    features: list[dict[str, Any]] = Field(default_factory=list)
    input_fields: list[str] = Field(default_factory=list)
    grades: GradesCard | None = Field(
        None,
        description="Fit, engagement, grid, temperature, stage and PQL: null for a model "
        "trained before grades",
    )


# ---- the request model of one feature spec -----------------------------------------------


@dataclass(frozen=True)
class RequestModel:
    """The request types of one model's feature spec: what `/predict` validates against."""

    spec: FeatureSpec
    lead_type: type[BaseModel]
    body_type: Any  # one lead or a batch, for the OpenAPI schema
    body_adapter: TypeAdapter  # the fast path: bytes to a lead or a batch in one pass
    leads_adapter: TypeAdapter  # the slow path: a list of raw leads

    @classmethod
    def from_spec(cls, spec: FeatureSpec) -> RequestModel:
        lead = lead_model(spec)
        batch = batch_model(lead)
        # batch first: a flat model without required fields would take {"leads": ...} as a lead
        body: Any = Annotated[Union[batch, lead], Field(union_mode="left_to_right")]  # noqa: UP007
        return cls(
            spec=spec,
            lead_type=lead,
            body_type=Union[lead, batch],  # noqa: UP007 (a runtime type)
            body_adapter=TypeAdapter(body),
            leads_adapter=TypeAdapter(list[lead]),  # type: ignore[valid-type]
        )


def request_body_schema(request: RequestModel | None) -> tuple[dict, dict]:
    """OpenAPI schema of the /predict body (one lead or a batch) and its components."""
    if request is None:  # no model yet: any object, described
        return {"type": "object", "description": "Lead fields depend on the loaded model"}, {}
    schema = TypeAdapter(request.body_type).json_schema(ref_template="#/components/schemas/{model}")
    components = schema.pop("$defs", {})
    return schema, components
