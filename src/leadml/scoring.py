"""Scoring validated request leads: one pass of the feature function and the model.

`score_requests` turns the leads of one or more requests into the tables `leadml score`
reads (`records.request_tables`) and calls the one feature function, so `/predict` and
`leadml score` give the same probabilities; then it adds the reasons and the notes each
lead's answer carries (values the model never saw, fields the lead left out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from leadml.features import build_features
from leadml.fit_features import CRM_FIT
from leadml.grades import LABELS
from leadml.parsing import ParsedRequest
from leadml.records import request_tables
from leadml.serving import LoadedModel

GRADE_REASONS = ("fit_reasons", "engagement_reasons")


@dataclass(frozen=True)
class Wanted:
    """What a request asks for besides the scores and grades: the score's reasons
    (`reasons=true`, the default) and the fit and engagement grades' reasons
    (`grade_reasons=true`; a TreeSHAP pass over each sub-model, so only on request)."""

    reasons: bool = True
    grade_reasons: bool = False


@dataclass(frozen=True)
class Scored:
    """One scoring pass as the score store keeps it: what the pass computed anyway, handed
    over as it is (no copy, no formatting), so that keeping it costs a request nothing.
    `recorder.records` turns it into store rows, off the request path."""

    model: str
    model_version: str
    scored_at: datetime
    lead_ids: list[str | None]  # per scored row; None where the lead sent no id of its own
    features: list[str]
    X: np.ndarray  # the derived features, one row per scored lead
    out: dict[str, np.ndarray]  # probability, score, band and the grades (Scorer.score_features)
    reasons: list[dict | None]  # the score's reasons where asked for
    # the moment the scores describe: a batch's as-of; None for a live request (= scored_at)
    as_of: datetime | None = None


Keep = Callable[[Scored], None]


def score_request(
    model: LoadedModel, parsed: ParsedRequest, wanted: Wanted, keep: Keep | None = None
) -> dict:
    """Score one request's validated leads; the response body (see schemas.PredictResponse)."""
    return score_requests(model, [(parsed, wanted)], keep)[0]


def score_requests(
    model: LoadedModel, requests: list[tuple[ParsedRequest, Wanted]], keep: Keep | None = None
) -> list[dict]:
    """Score the leads of several requests in one pass of the feature function and the model.

    Leads are told apart by position, so ids may repeat across the requests. `keep`, when
    given, is handed the pass (`Scored`) for the score store.
    """
    scorer, spec = model.scorer, model.scorer.spec
    owner = [(r, i) for r, (parsed, _) in enumerate(requests) for i in parsed.indices]
    leads = [lead for parsed, _ in requests for lead in parsed.leads]
    results: list[dict] = [
        {
            "model": model.name,
            "model_version": model.version,
            "predictions": [],
            "rejected": list(parsed.rejected),
            "notes": _request_notes(parsed),
        }
        for parsed, _ in requests
    ]
    if not leads:
        return results
    default_ids = [str(i + 1) for _, i in owner]
    frame, events, as_of = request_tables(spec, leads, default_ids, model.missing_markers)
    feats = build_features(frame, events, spec, as_of=as_of, source="request")
    for row in feats.rejects.frame.itertuples() if len(feats.rejects) else ():
        r, i = owner[int(row.row)]  # validation should have refused these already
        results[r]["rejected"].append(
            {
                "lead": i,
                "lead_id": str(row.lead_id),
                "field": str(row.field),
                "message": str(row.reason),
            }
        )
    rows = feats.X.index.to_numpy()
    X = feats.X.to_numpy(np.float64)
    out = scorer.score_features(X)
    asked = [requests[owner[k][0]][1] for k in rows]
    why: dict[str, list[dict | None]] = {
        name: [None] * len(X) for name in ("reasons", *GRADE_REASONS)
    }
    wanted = np.array([a.reasons for a in asked], dtype=bool)
    if wanted.any():
        found = scorer.reasons(X[wanted], probability=out["probability"][wanted])
        for j, reason in zip(np.flatnonzero(wanted), found, strict=True):
            why["reasons"][int(j)] = reason
    wanted = np.array([a.grade_reasons for a in asked], dtype=bool)
    if wanted.any():
        grades = scorer.grade_reasons(X[wanted])
        for name in GRADE_REASONS:
            for j, reason in zip(np.flatnonzero(wanted), grades[name], strict=True):
                why[name][int(j)] = reason
    not_sent = [m for parsed, _ in requests for m in _per_lead(parsed.missing, parsed.leads)]
    notes = _lead_notes(spec, leads, rows, feats.unseen_rows, not_sent)
    for k, row in enumerate(rows):
        results[owner[row][0]]["predictions"].append(
            {
                "lead_id": _lead_id(spec, leads[row], feats.ids[k]),
                "probability": round(float(out["probability"][k]), 6),
                "score": int(out["score"][k]),
                "band": str(out["band"][k]),
                **{name: _label(out[name][k]) for name in LABELS},
                **{name: why[name][k] for name in why},
                "notes": notes[k],
                "model": model.name,
                "model_version": model.version,
            }
        )
    for result in results:
        result["rejected"].sort(key=lambda e: e["lead"])
    if keep is not None:
        ids = [_own_id(spec, leads[row], feats.ids[k]) for k, row in enumerate(rows)]
        names = list(feats.X.columns)
        keep(
            Scored(model.name, model.version, datetime.now(UTC), ids, names, X, out, why["reasons"])
        )
    return results


def _own_id(spec, lead: dict, feature_id) -> str | None:
    """The lead's id as it sent it; None for a flat model without an id column when the lead
    sent no row_id (its id is then its place in the request, nothing to keep a history of)."""
    if spec.kind != "crm" and spec.id_column == "row_id" and not lead.get("row_id"):
        return None
    return _lead_id(spec, lead, feature_id)


def _label(value: Any) -> str | bool | None:
    """A grade as JSON: pql a bool, the others text (None where the model cannot tell)."""
    if value is None:
        return None
    return bool(value) if isinstance(value, bool | np.bool_) else str(value)


def _request_notes(parsed: ParsedRequest) -> list[str]:
    if not parsed.ignored_fields:
        return []
    return ["fields not used by this model were ignored: " + _names(parsed.ignored_fields)]


def _names(names: list[str], most: int = 10, longest: int = 60) -> str:
    """Field names for a note: at most `most`, each cut at `longest` characters (they come from
    the caller, and a key can be a megabyte long)."""
    shown = [n if len(n) <= longest else n[:longest] + "..." for n in names[:most]]
    return ", ".join(shown) + (f" and {len(names) - most} more" if len(names) > most else "")


def _per_lead(values: list, leads: list) -> list:
    return values if len(values) == len(leads) else [[] for _ in leads]


def _lead_id(spec, lead: dict, feature_id) -> str:
    return str(lead["lead_id"]) if spec.kind == "crm" else str(feature_id)


def _lead_notes(
    spec,
    leads: list[dict],
    rows: np.ndarray,
    unseen_rows: dict[str, np.ndarray],
    not_sent: list[list[str]],
) -> list[list[str]]:
    """Notes per scored lead (`rows`: positions in `leads`), each naming the request field:
    a value the model never saw, and the model's fields the lead left out."""
    notes: list[list[str]] = [[] for _ in rows]
    source = _source_fields(spec) if unseen_rows else {}
    for feature, mask in unseen_rows.items():
        name = source[feature]
        text = f"{name}: a value not seen in training, scored as unknown"
        for k in np.flatnonzero(mask).tolist():
            # a field left out can become a value never seen ("Unknown" region): not sent, not new
            if _given(leads[rows[k]].get(name)) and text not in notes[k]:
                notes[k].append(text)
    for k, row in enumerate(rows.tolist()):
        if not_sent[row]:
            notes[k].append("not sent, scored as missing: " + _names(not_sent[row]))
    return notes


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _source_fields(spec) -> dict[str, str]:
    """Feature -> the request field it is made from (export names may contain " (")."""
    if spec.kind == "crm":
        return {feature: source for feature, (source, _) in CRM_FIT.items()}
    out: dict[str, str] = {}
    for c in spec.columns:
        parts = ("seniority", "department") if c.kind == "title" else ()
        out.update(dict.fromkeys([f"{c.name} ({p})" for p in parts] or [c.name], c.name))
    return out
