"""The service's scoring function on small fitted models (the session's crm_model and
flat_model): bands from the model's thresholds, reasons on request, notes for values never
seen and fields left out, several requests in one pass; no HTTP (that is test_api.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from leadml import scoring
from leadml.bands import to_band, to_score
from leadml.parsing import ParsedRequest, parse_predict_body

UNSEEN = "{}: a value not seen in training, scored as unknown"


def _parse(model, body, skip_invalid: bool = False) -> ParsedRequest:
    return parse_predict_body(json.dumps(body).encode(), model.request, 10_000, skip_invalid)


def _score(model, body, reasons: bool = False, skip_invalid: bool = False) -> dict:
    return scoring.score_request(model, _parse(model, body, skip_invalid), scoring.Wanted(reasons))


def _crm_lead(crm_records, **changes) -> dict:
    lead = dict(crm_records[0])
    lead.update(changes)
    return {k: v for k, v in lead.items() if v is not ...}  # ... = leave the field out


def test_probability_score_and_band_follow_the_model(crm_model, crm_records):
    out = _score(crm_model, {"leads": crm_records})
    preds = out["predictions"]
    assert len(preds) == len(crm_records) and out["rejected"] == []
    assert [p["lead_id"] for p in preds] == [r["lead_id"] for r in crm_records]
    p = np.array([x["probability"] for x in preds])
    assert ((p > 0) & (p < 1)).all()
    assert [x["score"] for x in preds] == to_score(p).tolist()
    assert [x["band"] for x in preds] == to_band(p, crm_model.scorer.thresholds).tolist()
    assert {(x["model"], x["model_version"]) for x in preds} == {("leadml", "7")}
    assert (out["model"], out["model_version"]) == ("leadml", "7")


def test_the_service_scores_as_the_batch_path_does(crm_model, crm_records, crm_small):
    """/predict and `leadml score` call the same feature function: same probabilities."""
    cut = pd.Timestamp(crm_small.meta["as_of"])
    ids = [int(r["lead_id"]) for r in crm_records]
    leads = crm_small.leads.set_index("lead_id").loc[ids].reset_index()
    events = crm_small.events[crm_small.events["lead_id"].isin(ids)]
    frame, _ = crm_model.scorer.score_leads(leads, events, as_of=cut)
    expected = dict(zip(frame["lead_id"].astype(str), frame["probability"], strict=True))
    got = {
        p["lead_id"]: p["probability"]
        for p in _score(crm_model, {"leads": crm_records})["predictions"]
    }
    assert got.keys() == expected.keys()
    for lead_id, p in got.items():
        assert p == pytest.approx(expected[lead_id], abs=1e-6)


def test_reasons_only_when_asked_and_they_add_up_to_the_score(crm_model, crm_records):
    without = _score(crm_model, crm_records[0], reasons=False)["predictions"][0]
    assert without["reasons"] is None
    pred = _score(crm_model, crm_records[0], reasons=True)["predictions"][0]
    why = pred["reasons"]
    assert why["total"] == pytest.approx(100 * pred["probability"])
    listed = why["base_score"] + sum(r["points"] for r in why["positive"] + why["negative"])
    assert listed + why["other"] == pytest.approx(why["total"])
    assert all(r["points"] > 0 for r in why["positive"])
    assert all(r["points"] < 0 for r in why["negative"])
    assert pred["probability"] == without["probability"]


def test_an_unknown_category_is_scored_with_a_note_naming_the_field(crm_model, crm_records):
    known = _score(crm_model, _crm_lead(crm_records))["predictions"][0]
    new = _score(crm_model, _crm_lead(crm_records, industry="Quantum Knitting"))["predictions"][0]
    assert new["notes"] == [UNSEEN.format("industry")]
    assert known["notes"] == []
    assert 0 < new["probability"] < 1  # scored, not refused


def test_a_missing_value_is_no_unknown_category(crm_model, crm_records):
    sent_empty = _score(crm_model, _crm_lead(crm_records, industry=None))["predictions"][0]
    assert sent_empty["notes"] == []
    left_out = _score(crm_model, _crm_lead(crm_records, country=..., industry=...))
    notes = left_out["predictions"][0]["notes"]
    # a left-out country becomes the region "Unknown"; that is "not sent", not a new value
    assert notes == ["not sent, scored as missing: industry, country"]  # in the model's order


def test_fields_the_model_does_not_use_are_named_once_per_request(crm_model, crm_records):
    leads = [dict(crm_records[0], favourite_colour="red"), dict(crm_records[1], shoe_size=9)]
    for lead in leads:  # the sample's leads carry names, email and phone: no model field either
        for personal in ("first_name", "last_name", "email", "phone"):
            del lead[personal]
    out = _score(crm_model, {"leads": leads})
    assert out["notes"] == [
        "fields not used by this model were ignored: favourite_colour, shoe_size"
    ]
    assert len(out["predictions"]) == 2


def test_several_requests_in_one_pass_each_get_their_own_answer(crm_model, crm_records):
    a = _parse(crm_model, {"leads": crm_records[:3]})
    b = _parse(crm_model, crm_records[0])  # the same lead again, in another request
    first, second = scoring.score_requests(
        crm_model, [(a, scoring.Wanted(True)), (b, scoring.Wanted(False))]
    )
    assert [p["lead_id"] for p in first["predictions"]] == [r["lead_id"] for r in crm_records[:3]]
    assert [p["lead_id"] for p in second["predictions"]] == [crm_records[0]["lead_id"]]
    assert second["predictions"][0]["probability"] == first["predictions"][0]["probability"]
    assert all(p["reasons"] is not None for p in first["predictions"])
    assert second["predictions"][0]["reasons"] is None
    alone = scoring.score_request(crm_model, a, scoring.Wanted(True))
    assert alone == first


def test_a_request_whose_every_lead_was_refused_answers_with_the_refusals(crm_model, crm_records):
    bad = dict(crm_records[0], created_at="not a time")
    out = _score(crm_model, {"leads": [bad]}, skip_invalid=True)
    assert out["predictions"] == []
    assert [(e["lead"], e["field"]) for e in out["rejected"]] == [(0, "created_at")]


def test_skipped_leads_keep_their_place_in_the_request(crm_model, crm_records):
    bad = dict(crm_records[1], created_at="not a time")
    out = _score(crm_model, {"leads": [crm_records[0], bad, crm_records[2]]}, skip_invalid=True)
    ids = [p["lead_id"] for p in out["predictions"]]
    assert ids == [crm_records[0]["lead_id"], crm_records[2]["lead_id"]]
    assert [e["lead"] for e in out["rejected"]] == [1]


def test_a_long_list_of_field_names_is_cut_short():
    names = [f"f{i}" for i in range(11)] + ["x" * 100]
    text = scoring._names(names)
    assert text.startswith("f0, f1,") and text.endswith("f9 and 2 more")
    assert scoring._names(["y" * 100]) == "y" * 60 + "..."


# ---- flat models --------------------------------------------------------------------------


def _flat_lead(**changes) -> dict:
    lead = {
        "customer_ref": "C1",
        "web_visits": 4,
        "minutes_on_site": 12.5,
        "plan_interest": "Pro",
        "sales_region": "North",
        "newsletter": "yes",
        "owner_notes": "called",
    }
    return lead | changes


def test_flat_ids_come_from_the_id_column_and_unknown_values_get_a_note(flat_model):
    out = _score(
        flat_model,
        {"leads": [_flat_lead(), _flat_lead(customer_ref="C2", plan_interest="Enterprise")]},
    )
    first, second = out["predictions"]
    assert (first["lead_id"], second["lead_id"]) == ("C1", "C2")
    assert first["notes"] == [] and second["notes"] == [UNSEEN.format("plan_interest")]


def test_flat_missing_markers_read_as_missing_not_as_a_new_value(flat_model):
    na = _score(flat_model, _flat_lead(plan_interest="N/A"))["predictions"][0]
    none = _score(flat_model, _flat_lead(plan_interest=None))["predictions"][0]
    assert na["notes"] == [] and na["probability"] == none["probability"]


def test_a_flat_field_left_out_is_noted(flat_model):
    lead = _flat_lead()
    del lead["newsletter"]
    pred = _score(flat_model, lead)["predictions"][0]
    assert pred["notes"] == ["not sent, scored as missing: newsletter"]
