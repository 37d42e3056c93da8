"""A /predict body, from bytes to validated leads, with errors that name lead and field.

Valid bodies take one pydantic-core pass from bytes to leads; only a body with something
wrong in it takes the slow path that works out which lead and which field, and says so
without quoting the value sent (it may be an email address or a name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pydantic_core
from pydantic import TypeAdapter, ValidationError

from leadml.features import FeatureSpec
from leadml.schemas import MAX_ID_LENGTH, RequestError, RequestModel


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
    body: bytes,
    request: RequestModel,
    max_batch: int,
    skip_invalid: bool = False,
    batch_only: bool = False,
) -> ParsedRequest:
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
        parsed = request.body_adapter.validate_json(body)
    except ValueError:  # not JSON, or not valid: find out exactly what below
        parsed = None
    # a lead with "leads" in it is a batch that failed: a flat model without required fields
    # would otherwise score a batch with one bad lead as one empty lead
    if parsed is not None and not (
        isinstance(parsed, request.lead_type)
        and (batch_only or "leads" in (parsed.model_extra or {}))
    ):
        single = isinstance(parsed, request.lead_type)
        leads = [parsed] if single else parsed.leads
        _check_size(len(leads), max_batch)
        out = _parsed(leads, list(range(len(leads))), [], single)
        if not _duplicates(out.leads, request.spec, set()):
            return out
    data = _json(body)
    single = not (isinstance(data, dict) and "leads" in data)
    if single and not isinstance(data, dict):
        raise RequestError(400, 'expected a JSON object: one lead, or {"leads": [...]}')
    if single and batch_only:
        raise RequestError(
            422,
            'expected a batch, {"leads": [...]}; send a single lead to /predict',
            [{"lead": None, "lead_id": None, "field": "leads", "message": "Field required"}],
        )
    raw = [data] if single else data["leads"]
    if not isinstance(raw, list):
        raise RequestError(
            422,
            "leads must be a list of lead objects",
            [{"lead": None, "lead_id": None, "field": "leads", "message": "expected a list"}],
        )
    _check_size(len(raw), max_batch)
    if not raw:
        raise RequestError(
            422,
            "leads is empty: send at least one lead",
            [{"lead": None, "lead_id": None, "field": "leads", "message": "empty list"}],
        )
    spec = request.spec
    errors = _validate(request.leads_adapter, raw, spec)
    errors += _duplicates(raw, spec, {e["lead"] for e in errors})
    bad = {e["lead"] for e in errors}
    if errors and not skip_invalid:
        first = errors[0]
        where = f"lead {first['lead']}" + (f" ({first['lead_id']})" if first["lead_id"] else "")
        raise RequestError(
            422,
            f"{len(bad)} invalid lead(s); first: {where}, field {first['field']}: {first['message']}",
            errors,
        )
    indices = [i for i in range(len(raw)) if i not in bad]
    leads = request.leads_adapter.validate_python([raw[i] for i in indices]) if indices else []
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
            errors.append(
                {
                    "lead": index,
                    "lead_id": _lead_id(lead, spec),
                    "field": _path(e["loc"][1:]),
                    "message": e["msg"],
                }
            )
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
            errors.append(
                {
                    "lead": i,
                    "lead_id": lead_id,
                    "field": _path(("lead_id",)),
                    "message": f"same id as lead {seen[lead_id]}; send each lead once per request",
                }
            )
        else:
            seen[lead_id] = i
    return errors
