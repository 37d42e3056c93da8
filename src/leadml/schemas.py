"""Request and response models of the scoring service.

The lead model is made from the loaded model's feature spec (`lead_model(spec)`): a CRM
model reads a lead's profile fields plus its recent events; a flat model reads the columns
of the export it was trained on. So validation, error messages and `/docs` all speak the
fields of the model being served.

Errors name the lead (its index in the request, and its id when it has one) and the field,
and never quote the value sent: it may be an email address or a name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, NotRequired

import pydantic_core
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from leadml.dataset import EVENT_TYPES, FALSE_WORDS, PAGE_KINDS, TRUE_WORDS
from leadml.features import FeatureSpec

if TYPE_CHECKING:
    from leadml.serving import LoadedModel

MAX_EVENTS_PER_LEAD = 10_000
ERROR_STATUSES = {
    400: "The body is empty, not JSON in UTF-8, nested over 200 levels, or not a lead or batch",
    401: "Missing or wrong API key (X-API-Key), when LEADML_API_KEY is set",
    413: "Batch or body over the limit (LEADML_MAX_BATCH, LEADML_MAX_BODY_MB)",
    422: "A lead has a missing, wrongly typed or out-of-range field: see errors[]",
    503: "No model loaded yet",
}


class RequestError(Exception):
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
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError("expected true/false (or yes/no, 1/0)")


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


class Event(TypedDict):
    """One activity of the lead. Events at or after the lead's `as_of` are not counted.

    A TypedDict rather than a model: a 1,000-lead batch carries some 20,000 events, and
    pydantic validates them into dicts four times faster than into model instances.
    """

    occurred_at: Annotated[
        Stamp, Field(description="When it happened (ISO 8601; UTC when no zone is given)")
    ]
    event_type: Annotated[Literal[EVENT_TYPES], Field(description="What happened")]  # type: ignore[valid-type]
    page: NotRequired[
        Annotated[
            Text | None,
            Field(
                description=f"For page views: {', '.join(PAGE_KINDS)} (anything else counts as other)"
            ),
        ]
    ]


_CRM_FIELDS = {
    "job_title": "Job title as typed (normalised to seniority and department)",
    "company_size": "Company size band, e.g. 51-200",
    "industry": "Industry",
    "country": "Country (grouped into regions)",
    "lead_source": "Where the lead came from, e.g. Webinar, Paid search",
}


def lead_model(spec: FeatureSpec) -> type[BaseModel]:
    """The pydantic model of one lead for this feature spec (extra fields are ignored)."""
    config = ConfigDict(extra="allow", populate_by_name=False, title="Lead")
    fields: dict[str, Any] = {}
    if spec.kind == "crm":
        fields["lead_id"] = (LeadId, Field(description="Your id for the lead; echoed back"))
        fields["created_at"] = (Stamp | None, Field(None, description="When the lead was created"))
        for name, text in _CRM_FIELDS.items():
            fields[name] = (Text | None, Field(None, description=text))
        fields["events"] = (
            list[Event],
            Field(default_factory=list, max_length=MAX_EVENTS_PER_LEAD,
                  description=f"Recent activity (the model looks back {spec.observation_days} days)"),
        )  # fmt: skip
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
            Field(None, description="Optional id, echoed back; left out or null: the lead's "
                  "place in the request (1, 2, ...). A blank id is refused, as lead ids are"),
        )  # fmt: skip
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


class Prediction(BaseModel):
    lead_id: str
    probability: float = Field(
        ge=0, le=1, description="Calibrated chance of converting within the horizon"
    )
    score: int = Field(ge=1, le=99, description="The probability in percent, 1-99")
    band: Literal["SQL", "MQL", "Unqualified"]
    reasons: Reasons | None = None
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


# ---- parsing -----------------------------------------------------------------------------


@dataclass
class ParsedRequest:
    """Validated leads (dicts keyed by input field), their request indices, and what was refused."""

    leads: list[dict]
    indices: list[int]
    rejected: list[dict] = field(default_factory=list)
    ignored_fields: list[str] = field(default_factory=list)
    single: bool = False
    missing: list[list[str]] = field(default_factory=list)  # per lead: model fields not sent


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(lead)"


def _lead_id(raw: Any, spec: FeatureSpec) -> str | None:
    """The lead's id for an error, when it is a valid id (anything else is not echoed)."""
    key = "lead_id" if spec.kind == "crm" else spec.id_column
    value = raw.get(key) if isinstance(raw, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH:
        return None
    return value.strip() or None


_BOM = b"\xef\xbb\xbf"


def parse_predict_body(
    body: bytes, model: LoadedModel, max_batch: int, skip_invalid: bool = False,
    batch_only: bool = False,
) -> ParsedRequest:  # fmt: skip
    """JSON body -> validated leads; raises RequestError (400/413/422) naming lead and field.

    A body with "leads" is a batch, anything else one lead (`batch_only`: a batch is
    required). A valid body goes from bytes to models in one pydantic-core pass; only a body
    with something wrong in it takes the slow path that works out which lead and field.
    """
    if body.startswith(_BOM):  # RFC 8259 lets a parser ignore it
        body = body[len(_BOM) :]
    if not body.strip():
        raise RequestError(400, 'empty body: send one lead as a JSON object, or {"leads": [...]}')
    try:
        parsed = model.body_adapter.validate_json(body)
    except ValueError:  # not JSON, or not valid: find out exactly what below
        parsed = None
    # a lead with "leads" in it is a batch that failed: a flat model without required fields
    # would otherwise score a batch with one bad lead as one empty lead
    if parsed is not None and not (
        isinstance(parsed, model.lead_type)
        and (batch_only or "leads" in (parsed.model_extra or {}))
    ):
        single = isinstance(parsed, model.lead_type)
        leads = [parsed] if single else parsed.leads
        _check_size(len(leads), max_batch)
        out = _parsed(leads, list(range(len(leads))), [], single)
        if not _duplicates(out.leads, model.scorer.spec, set()):
            return out
    data = _json(body)
    single = not (isinstance(data, dict) and "leads" in data)
    if single and not isinstance(data, dict):
        raise RequestError(400, 'expected a JSON object: one lead, or {"leads": [...]}')
    if single and batch_only:
        raise RequestError(422, 'expected a batch, {"leads": [...]}; send a single lead to /predict',
                           [{"lead": None, "lead_id": None, "field": "leads", "message": "Field required"}])  # fmt: skip
    raw = [data] if single else data["leads"]
    if not isinstance(raw, list):
        raise RequestError(422, "leads must be a list of lead objects",
                           [{"lead": None, "lead_id": None, "field": "leads", "message": "expected a list"}])  # fmt: skip
    _check_size(len(raw), max_batch)
    if not raw:
        raise RequestError(422, "leads is empty: send at least one lead",
                           [{"lead": None, "lead_id": None, "field": "leads", "message": "empty list"}])  # fmt: skip
    spec = model.scorer.spec
    errors = _validate(model.leads_adapter, raw, spec)
    errors += _duplicates(raw, spec, {e["lead"] for e in errors})
    bad = {e["lead"] for e in errors}
    if errors and not skip_invalid:
        first = errors[0]
        where = f"lead {first['lead']}" + (f" ({first['lead_id']})" if first["lead_id"] else "")
        raise RequestError(
            422, f"{len(bad)} invalid lead(s); first: {where}, field {first['field']}: {first['message']}",
            errors,
        )  # fmt: skip
    indices = [i for i in range(len(raw)) if i not in bad]
    leads = model.leads_adapter.validate_python([raw[i] for i in indices]) if indices else []
    return _parsed(leads, indices, errors, single)


# what the JSON parser says, in the caller's terms (its messages never quote the input)
_JSON_PROBLEMS = {
    "recursion limit exceeded": "nested more than 200 levels deep",
    "number out of range": "a number with more digits than a number can have",
}


def _json(body: bytes) -> Any:
    """The slow path's parse, by the same parser as the fast path (same limits: nesting,
    digits, Unicode), with a message for each way a body can be unreadable."""
    if 0 in body[:4] or body.startswith((b"\xff\xfe", b"\xfe\xff")):  # JSON text has no NUL
        raise RequestError(400, "body is UTF-16 or UTF-32 text; send JSON encoded as UTF-8")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(
            400, f"body is not UTF-8 text (bad byte at offset {exc.start}); send JSON as UTF-8"
        ) from None
    try:
        return pydantic_core.from_json(body)
    except ValueError as exc:
        problem = str(exc)
        for words, said in _JSON_PROBLEMS.items():
            problem = problem.replace(words, said)
        raise RequestError(400, f"body is not valid JSON: {problem}") from None


def _check_size(n: int, max_batch: int) -> None:
    if n > max_batch:
        raise RequestError(
            413,
            f"batch of {n:,} leads is over the limit of {max_batch:,} (LEADML_MAX_BATCH); split it",
        )


# not worth a note when left out: the id (required, or its place stands in), events (none
# means no activity), as_of (now)
_NOT_NOTED = {"lead_id", "lead_id_", "row_id", "events", "as_of"}


def _parsed(leads: list, indices: list[int], errors: list[dict], single: bool) -> ParsedRequest:
    ignored = sorted({k for lead in leads for k in (lead.model_extra or {})})
    keys = (
        [(name, f.alias or name) for name, f in type(leads[0]).model_fields.items()]
        if leads
        else []
    )
    values = [lead.__dict__ for lead in leads]  # the fields, without the extras; no copy of events
    dicts = [{key: v[name] for name, key in keys} for v in values]
    noted = [(name, key) for name, key in keys if name not in _NOT_NOTED]
    missing = [[key for name, key in noted if name not in lead.model_fields_set] for lead in leads]
    return ParsedRequest(dicts, indices, errors, ignored, single, missing)


def _validate(adapter: TypeAdapter, raw: list, spec: FeatureSpec) -> list[dict]:
    try:
        adapter.validate_python(raw)
    except ValidationError as exc:
        errors = []
        for e in exc.errors(include_input=False, include_url=False):
            index = e["loc"][0] if e["loc"] and isinstance(e["loc"][0], int) else None
            lead = raw[index] if index is not None else None
            errors.append({"lead": index, "lead_id": _lead_id(lead, spec),
                           "field": _path(e["loc"][1:]), "message": e["msg"]})  # fmt: skip
        return errors
    return []


def _duplicates(raw: list, spec: FeatureSpec, already_bad: set) -> list[dict]:
    seen: dict[str, int] = {}
    errors = []
    for i, lead in enumerate(raw):
        lead_id = _lead_id(lead, spec)
        if lead_id is None or i in already_bad:
            continue
        lead_id = lead_id.strip()
        if lead_id in seen:
            errors.append({"lead": i, "lead_id": lead_id, "field": _path(("lead_id",)),
                           "message": f"same id as lead {seen[lead_id]}; send each lead once per request"})  # fmt: skip
        else:
            seen[lead_id] = i
    return errors


def request_body_schema(model: LoadedModel | None) -> tuple[dict, dict]:
    """OpenAPI schema of the /predict body (one lead or a batch) and its components."""
    if model is None:  # no model yet: any object, described
        return {"type": "object", "description": "Lead fields depend on the loaded model"}, {}
    schema = TypeAdapter(model.body_type).json_schema(ref_template="#/components/schemas/{model}")
    components = schema.pop("$defs", {})
    return schema, components
