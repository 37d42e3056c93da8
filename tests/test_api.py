"""API tests of the scoring service with small fitted models (in-process, no network)."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from leadml import dataset
from leadml.api import create_app
from leadml.bands import to_score
from leadml.config import ServeSettings, Settings, TrainConfig
from leadml.records import from_tables
from leadml.score import score_file
from leadml.serving import LoadedModel
from leadml.train import fit

pytestmark = pytest.mark.slow
PII = {"email": "jane.doe@example.com", "first_name": "Janetta", "phone": "+44 7700 900123"}


def client(model, tmp_path=None, **serve) -> TestClient:
    settings = Settings.from_env(tmp_path) if tmp_path else None
    return TestClient(create_app(settings, ServeSettings(reload_seconds=0, **serve), model))


def test_single_lead_gets_probability_score_band_reasons(crm_model, crm_records):
    with client(crm_model) as c:
        r = c.post("/predict", json=crm_records[0])
    assert r.status_code == 200, r.text
    body = r.json()
    (p,) = body["predictions"]
    assert p["lead_id"] == crm_records[0]["lead_id"]
    assert 0 < p["probability"] < 1 and p["score"] == int(to_score(np.array([p["probability"]]))[0])
    t = crm_model.scorer.thresholds
    expected = (
        "SQL"
        if p["probability"] >= t.sql
        else "MQL"
        if p["probability"] >= t.mql
        else "Unqualified"
    )
    assert p["band"] == expected
    assert (
        (p["model"], p["model_version"])
        == ("leadml", "7")
        == (body["model"], body["model_version"])
    )
    why = p["reasons"]
    assert 1 <= len(why["positive"]) <= 3 and len(why["negative"]) <= 3
    assert all(x["points"] > 0 for x in why["positive"]) and all(
        x["points"] < 0 for x in why["negative"]
    )
    assert why["positive"] == sorted(why["positive"], key=lambda x: -x["points"])
    labels = set(crm_model.scorer.spec.reason_groups())
    assert {x["field"] for x in why["positive"] + why["negative"]} <= labels
    # PII fields are not model inputs: named as ignored, never echoed
    assert "email" in body["notes"][0] and PII["email"] not in r.text


def test_batch_keeps_order_and_reasons_can_be_switched_off(crm_model, crm_records):
    with client(crm_model) as c:
        r = c.post("/predict", params={"reasons": "false"}, json={"leads": crm_records})
    assert r.status_code == 200
    preds = r.json()["predictions"]
    assert [p["lead_id"] for p in preds] == [x["lead_id"] for x in crm_records]
    assert all(p["reasons"] is None for p in preds)
    assert len({p["probability"] for p in preds}) > 10  # not one constant answer


def test_predict_equals_leadml_score_on_the_same_leads(crm_model, crm_dir, tmp_path):
    out = tmp_path / "scores.csv"
    summary = score_file(crm_dir, out, Settings.from_env(tmp_path), crm_model.uri)
    batch = pd.read_csv(out, dtype={"lead_id": str}).head(300)
    data = dataset.load_crm(crm_dir, require_outcome=False)
    leads = data.leads.set_index("lead_id").loc[batch["lead_id"]].reset_index()
    events = data.events[data.events["lead_id"].isin(batch["lead_id"])]
    rows = from_tables(leads, events, pd.Timestamp(summary.as_of))
    records = rows.drop(columns=[c for c in ("converted", "converted_at") if c in rows])
    records = records.astype(object).where(records.notna(), None)
    payload = [
        {**r, "lead_id": str(r["lead_id"]), "events": json.loads(r["events"])}
        for r in records.to_dict("records")
    ]
    with client(crm_model) as c:
        r = c.post("/predict?reasons=false", json={"leads": payload})
    assert r.status_code == 200, r.text[:500]
    served = pd.DataFrame(r.json()["predictions"])
    assert (served["lead_id"] == batch["lead_id"].astype(str)).all()
    assert np.abs(served["probability"].to_numpy() - batch["probability"].to_numpy()).max() < 2e-6
    assert (served["band"] == batch["band"]).all() and (served["score"] == batch["score"]).all()


def test_flat_model_predict_equals_leadml_score(flat_model, flat_csv, tmp_path):
    out = tmp_path / "flat_scores.csv"
    score_file(flat_csv, out, Settings.from_env(tmp_path), flat_model.uri)
    scored = pd.read_csv(out).head(200)
    rows = pd.read_csv(flat_csv, sep=";").head(200).drop(columns=["won"])
    payload = json.loads(rows.to_json(orient="records"))
    with client(flat_model) as c:
        r = c.post("/predict", json={"leads": payload})
        docs = c.get("/openapi.json").json()
    assert r.status_code == 200, r.text[:500]
    served = pd.DataFrame(r.json()["predictions"])
    assert list(served["lead_id"]) == list(scored["customer_ref"])
    assert np.abs(served["probability"].to_numpy() - scored["probability"].to_numpy()).max() < 2e-6
    # /docs shows this model's fields, under their export names
    lead = docs["components"]["schemas"]["Lead"]["properties"]
    assert {"customer_ref", "web_visits", "plan_interest", "newsletter"} <= set(lead)
    assert lead["web_visits"]["anyOf"][0]["minimum"] == 0
    assert docs["components"]["schemas"]["Lead"]["required"] == ["customer_ref"]


def test_docs_show_the_crm_model_fields(crm_model):
    with client(crm_model) as c:
        spec = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    refs = {x["$ref"].rsplit("/", 1)[-1] for x in body["schema"]["anyOf"]}
    assert refs == {"Lead", "LeadBatch"}
    lead = spec["components"]["schemas"]["Lead"]
    assert {"lead_id", "job_title", "company_size", "events", "as_of"} <= set(lead["properties"])
    event = spec["components"]["schemas"]["Event"]["properties"]
    assert "demo_request" in event["event_type"]["enum"]


def _lead(crm_records, **change):
    return {**crm_records[1], **change}


BAD = {
    "wrong type": (lambda r: _lead(r, job_title=123), 422, 0, "job_title"),
    "missing id": (lambda r: {k: v for k, v in r[1].items() if k != "lead_id"}, 422, 0, "lead_id"),
    "empty id": (lambda r: _lead(r, lead_id="  "), 422, 0, "lead_id"),
    "bad date": (lambda r: _lead(r, created_at="last tuesday"), 422, 0, "created_at"),
    "date out of range": (lambda r: _lead(r, as_of="9999-01-01T00:00:00"), 422, 0, "as_of"),
    "unknown event": (
        lambda r: _lead(r, events=[{"occurred_at": "2026-01-01", "event_type": "hug"}]),
        422,
        0,
        "events[0].event_type",
    ),
    "events not a list": (lambda r: _lead(r, events="lots"), 422, 0, "events"),
    "bad lead in batch": (
        lambda r: {"leads": [r[0], r[1], _lead(r, lead_id=None)]},
        422,
        2,
        "lead_id",
    ),
    "duplicate id": (lambda r: {"leads": [r[0], r[1], r[0]]}, 422, 2, "lead_id"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_leads_get_422_naming_lead_and_field(crm_model, crm_records, case):
    make, status, index, field = BAD[case]
    with client(crm_model) as c:
        r = c.post("/predict", json=make(crm_records))
    assert r.status_code == status, r.text
    body = r.json()
    assert any(e["lead"] == index and e["field"] == field for e in body["errors"]), body
    assert f"lead {index}" in body["error"]


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"", 400, "empty body"),
        (b'{"lead_id": "a", ', 400, "not valid JSON"),
        (b"\xff\xfe\x00", 400, "UTF-8"),
        (b"[1, 2]", 400, "expected a JSON object"),
        (b'"just text"', 400, "expected a JSON object"),
        (b'{"leads": 5}', 422, "list"),
        (b'{"leads": []}', 422, "empty"),
    ],
)
def test_malformed_bodies_get_4xx_with_json_error(crm_model, body, status, words):
    with client(crm_model) as c:
        r = c.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and words in r.json()["error"]


def test_oversized_batch_and_body_get_413(crm_model, crm_records):
    with client(crm_model, max_batch=5, max_body_mb=0.05) as c:
        r = c.post(
            "/predict", json={"leads": [_lead(crm_records, lead_id=str(i)) for i in range(6)]}
        )
        assert r.status_code == 413 and "LEADML_MAX_BATCH" in r.json()["error"]
        r = c.post("/predict", json={"leads": [crm_records[0]] * 2, "pad": "x" * 60_000})
        assert r.status_code == 413 and "LEADML_MAX_BODY_MB" in r.json()["error"]


def test_nan_infinity_and_negative_counts_get_422(flat_model):
    lead = {
        "customer_ref": "C1",
        "web_visits": 3,
        "minutes_on_site": 12.5,
        "plan_interest": "Pro",
        "sales_region": "North",
        "newsletter": "yes",
    }
    with client(flat_model) as c:
        assert c.post("/predict", json=lead).status_code == 200
        for bad in ("NaN", "Infinity", "-Infinity"):
            body = json.dumps(lead).replace('"web_visits": 3', f'"web_visits": {bad}')
            r = c.post("/predict", content=body)
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "web_visits"
        r = c.post("/predict", json={**lead, "web_visits": -2})
        assert (
            r.status_code == 422
            and "greater than or equal to 0" in r.json()["errors"][0]["message"]
        )
        r = c.post("/predict", json={**lead, "newsletter": "perhaps"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "newsletter"
        r = c.post("/predict", json={**lead, "minutes_on_site": "12.5"})  # a number in text: fine
        assert r.status_code == 200


def test_skip_invalid_scores_the_good_and_lists_the_bad(crm_model, crm_records):
    leads = [crm_records[0], _lead(crm_records, job_title=["x"]), crm_records[2]]
    with client(crm_model) as c:
        r = c.post("/predict?skip_invalid=true&reasons=false", json={"leads": leads})
    assert r.status_code == 200
    body = r.json()
    assert [p["lead_id"] for p in body["predictions"]] == [
        crm_records[0]["lead_id"],
        crm_records[2]["lead_id"],
    ]
    assert [(e["lead"], e["field"]) for e in body["rejected"]] == [(1, "job_title")]


def test_unseen_category_is_scored_with_a_note(crm_model, crm_records):
    with client(crm_model) as c:
        r = c.post("/predict", json=_lead(crm_records, industry="Asteroid mining"))
    assert r.status_code == 200
    (p,) = r.json()["predictions"]
    assert any(n.startswith("industry:") and "not seen in training" in n for n in p["notes"])


def test_api_key_guards_predict_model_and_admin(crm_model, crm_records):
    with client(crm_model, api_key="s3cret") as c:
        assert c.post("/predict", json=crm_records[0]).status_code == 401
        assert (
            c.post("/predict", json=crm_records[0], headers={"X-API-Key": "nope"}).status_code
            == 401
        )
        assert (
            c.post("/predict", json=crm_records[0], headers={"X-API-Key": "s3cret"}).status_code
            == 200
        )
        assert c.get("/model").status_code == 401
        assert c.get("/model", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.post("/admin/reload").status_code == 401
        assert c.get("/health").status_code == 200 and c.get("/metrics").status_code == 200
    with client(crm_model) as c:  # no key configured: open
        assert c.post("/predict", json=crm_records[0]).status_code == 200
        assert c.get("/model").status_code == 200


def test_operations_endpoints(crm_model, crm_records):
    with client(crm_model) as c:
        assert c.get("/health").json() == {"status": "ok"}
        assert c.get("/ready").json() == {"ready": True, "model": "leadml", "model_version": "7"}
        c.post("/predict", json={"leads": crm_records[:10]})
        c.post("/predict", content=b"{")
        card = c.get("/model").json()
        metrics = c.get("/metrics").text
    assert card["version"] == "7" and card["kind"] == "crm"
    assert (
        card["metrics"]["roc_auc"] > 0.6 and card["thresholds"]["sql"] > card["thresholds"]["mql"]
    )
    assert [b["band"] for b in card["band_backtest"]] == ["SQL", "MQL", "Unqualified"]
    assert len(card["features"]) == len(crm_model.scorer.spec.feature_names)
    assert 'leadml_requests_total{route="/predict",status="200"} 1.0' in metrics
    assert 'leadml_requests_total{route="/predict",status="400"} 1.0' in metrics
    assert 'leadml_request_duration_seconds_bucket{le="0.01",route="/predict"}' in metrics
    scored = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("leadml_leads_scored_total{")
    )
    assert scored == 10
    assert 'leadml_model_info{model="leadml",version="7"} 1.0' in metrics


def test_no_model_means_not_ready_and_503_that_says_why(tmp_path, crm_records):
    app = create_app(
        Settings.from_env(tmp_path),
        ServeSettings(model_uri=str(tmp_path / "nothing"), reload_seconds=0),
    )
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        r = c.get("/ready")
        assert r.status_code == 503 and "scorer.json missing" in r.json()["error"]
        r = c.post("/predict", json=crm_records[0])
        assert r.status_code == 503 and "no model loaded" in r.json()["error"]


def test_admin_reload_swaps_in_a_new_export(tmp_path, crm_model, flat_model, crm_records):
    export = tmp_path / "champion"
    crm_model.scorer.save(export)
    app = create_app(
        Settings.from_env(tmp_path), ServeSettings(model_uri=str(export), reload_seconds=0)
    )
    with TestClient(app) as c:
        assert c.post("/predict", json=crm_records[0]).status_code == 200
        flat_model.scorer.save(export)  # a different model lands in the export folder
        r = c.post("/admin/reload")
        assert r.status_code == 200 and r.json()["model_version"] == "export"
        # the new model is a flat one: CRM leads are now refused, flat rows scored
        assert c.post("/predict", json=crm_records[0]).status_code == 422
        spec = c.get("/openapi.json").json()
        assert "web_visits" in spec["components"]["schemas"]["Lead"]["properties"]


def test_personal_data_never_reaches_the_log(crm_model, crm_records, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    lead = {**crm_records[0], **PII, "lead_id": "L-1"}
    with client(crm_model) as c:
        assert c.post("/predict", json=lead).status_code == 200
        assert c.post("/predict", json={**lead, "job_title": 5}).status_code == 422

        def boom(*args, **kwargs):
            raise ValueError(f"cannot score {PII['email']} {PII['phone']}")

        monkeypatch.setattr("leadml.scoring.score_requests", boom)
        r = c.post("/predict", json=lead)
    assert r.status_code == 500 and PII["email"] not in r.text
    assert "ValueError" in caplog.text  # the failure is logged, its message (with data) is not
    for value in PII.values():
        assert value not in caplog.text


def test_probabilities_are_finite_json(crm_model, crm_records):
    with client(crm_model) as c:
        preds = c.post("/predict", json={"leads": crm_records}).json()["predictions"]
    assert all(math.isfinite(p["probability"]) for p in preds)


def test_predict_batch_scores_a_batch_as_predict_does(crm_model, crm_records):
    leads = {"leads": crm_records[:5]}
    with client(crm_model) as c:
        batch = c.post("/predict/batch", json=leads, params={"skip_invalid": "true"})
        predict = c.post("/predict", json=leads, params={"skip_invalid": "true"})
        fast = c.post("/predict/batch", json=leads, params={"reasons": "false"})
    assert batch.status_code == 200 and batch.json() == predict.json()
    assert [p["lead_id"] for p in batch.json()["predictions"]] == [
        r["lead_id"] for r in crm_records[:5]
    ]
    assert all(p["reasons"] is None for p in fast.json()["predictions"])


def test_predict_batch_takes_only_a_batch(crm_model, crm_records):
    with client(crm_model) as c:
        r = c.post("/predict/batch", json=crm_records[0])
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["leads"]
        assert "/predict" in r.json()["error"]
        r = c.post("/predict/batch", json=[crm_records[0]])
        assert r.status_code == 400 and "expected a JSON object" in r.json()["error"]


def test_predict_batch_is_documented_with_the_model_lead_fields(flat_model):
    with client(flat_model) as c:
        spec = c.get("/openapi.json").json()
    op = spec["paths"]["/predict/batch"]["post"]
    assert op["requestBody"]["required"] is True
    assert op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LeadBatch"
    }
    assert {p["name"] for p in op["parameters"]} == {"reasons", "grade_reasons", "skip_invalid"}
    assert set(op["responses"]) >= {"200", "400", "422", "413"}
    schemas = spec["components"]["schemas"]
    assert schemas["LeadBatch"]["properties"]["leads"]["items"] == {
        "$ref": "#/components/schemas/Lead"
    }
    assert {"customer_ref", "web_visits"} <= set(schemas["Lead"]["properties"])
    assert "contact_email" not in json.dumps(spec)  # a personal-data column the model skipped


UNSEEN = ": a value not seen in training, scored as unknown"


@pytest.fixture(scope="module")
def bracket_model(tmp_path_factory):
    """A flat export whose column names hold " (": a category and a job-title column."""
    rng = np.random.default_rng(4)
    n = 600
    visits = rng.poisson(4, n)
    frame = pd.DataFrame(
        {
            "Budget (EUR)": rng.choice(["low", "mid", "high"], n),
            "Job Title (current)": rng.choice(
                ["Sales Manager", "Marketing Director", "Engineer"], n
            ),
            "visits": visits,
            "won": np.where(rng.random(n) < 1 / (1 + np.exp(2 - 0.4 * visits)), "yes", "no"),
        }
    )
    path = tmp_path_factory.mktemp("brackets") / "export.csv"
    frame.to_csv(path, index=False)
    cfg = TrainConfig.model_validate({"flat": {"target": "won"}, "model": {"baseline": False}})
    result, _ = fit(path, cfg)
    assert [c.kind for c in result.scorer.spec.columns] == ["category", "title", "numeric"]
    return LoadedModel.build(result.scorer, "leadml", "1", str(path.parent), "fp")


def test_a_note_names_the_field_as_sent_even_with_brackets_in_its_name(bracket_model):
    lead = {"Budget (EUR)": "astronomical", "Job Title (current)": "Student intern", "visits": 3}
    with client(bracket_model) as c:
        r = c.post("/predict", json=lead)
    assert r.status_code == 200, r.text
    assert set(r.json()["predictions"][0]["notes"]) == {
        f"Budget (EUR){UNSEEN}",
        f"Job Title (current){UNSEEN}",
    }


def test_fields_left_out_are_noted_as_not_sent_not_as_new_values(crm_model, crm_records):
    """A CRM lead without a country has region "Unknown", which this model never saw: that
    is a field not sent, not a new value of it."""
    lead = {k: v for k, v in crm_records[1].items() if k not in ("country", "industry")}
    with client(crm_model) as c:
        r = c.post("/predict", json=lead)
        full = c.post("/predict", json={**crm_records[1], "country": "Atlantis"})
    assert r.json()["predictions"][0]["notes"] == ["not sent, scored as missing: industry, country"]
    assert full.json()["predictions"][0]["notes"] == [f"country{UNSEEN}"]  # sent, and new


def test_a_missing_value_marker_is_missing_as_in_training(flat_model):
    """The export said "Select" for "not filled in"; training read it as missing (the model's
    missing_values), so a request's "Select" is missing too, not a value never seen."""
    lead = {
        "customer_ref": "C1",
        "web_visits": 3,
        "minutes_on_site": 12.5,
        "sales_region": "North",
        "newsletter": "yes",
        "owner_notes": "called",
    }
    with client(flat_model) as c:
        marked = c.post("/predict", json={**lead, "plan_interest": "Select"}).json()
        null = c.post("/predict", json={**lead, "plan_interest": None}).json()
    (p,) = marked["predictions"]
    assert p["notes"] == [] and p["probability"] == null["predictions"][0]["probability"]
    why = p["reasons"]["positive"] + p["reasons"]["negative"]
    assert all(x["value"] == "missing" for x in why if x["field"] == "plan_interest")


def test_x_education_notes_name_only_fields_with_new_values(xedu_model, xedu_leads):
    """On 10c1925, 54 notes on these 50 leads called X Education's "Select" (not filled in)
    a value never seen."""
    with client(xedu_model) as c:
        r = c.post("/predict", json={"leads": xedu_leads}, params={"reasons": "false"})
    preds = r.json()["predictions"]
    notes = [(lead, n) for lead, p in zip(xedu_leads, preds, strict=True) for n in p["notes"]]
    for lead, note in notes:
        field = note.removesuffix(UNSEEN)
        assert field in lead and lead[field] not in (None, "Select"), note
    assert len(notes) <= 2


# ---- grades: fit, engagement, grid, temperature, stage, pql ------------------------------

ALLOWED = {
    "fit": {"A", "B", "C", "D"},
    "engagement": {"1", "2", "3", "4"},
    "grid": {f + e for f in "ABCD" for e in "1234"},
    "temperature": {"hot", "warm", "cold"},
    "stage": {"ToFu", "MoFu", "BoFu"},
    "pql": {True, False},
}


def test_predictions_carry_the_grades_with_allowed_values(crm_model, crm_records):
    with client(crm_model) as c:
        single = c.post("/predict", json=crm_records[0]).json()["predictions"]
        batch = c.post("/predict/batch", json={"leads": crm_records}).json()["predictions"]
    for p in single + batch:
        for name, allowed in ALLOWED.items():
            assert p[name] in allowed, (name, p[name])  # a CRM model with events tells them all
        assert p["grid"] == p["fit"] + p["engagement"]
    assert single[0] == batch[0]
    assert len({p["grid"] for p in batch}) > 3  # not one constant answer
    expected = crm_model.scorer.grades.label(_features(crm_model, crm_records))
    assert [p["grid"] for p in batch] == list(expected["grid"])
    assert [p["pql"] for p in batch] == [bool(v) for v in expected["pql"]]


def _features(model, leads: list[dict]) -> np.ndarray:
    from leadml.features import build_features
    from leadml.records import to_tables

    frame, events, as_of = to_tables(pd.DataFrame(leads), crm=True)
    return build_features(frame, events, model.scorer.spec, as_of=as_of).X.to_numpy(np.float64)


def test_grade_reasons_come_on_request_only(crm_model, crm_records):
    with client(crm_model) as c:
        leads = {"leads": crm_records[:5]}
        asked = c.post("/predict?grade_reasons=true", json=leads).json()["predictions"]
        default = c.post("/predict", json=leads).json()["predictions"]
        only = c.post("/predict?reasons=false&grade_reasons=true", json=leads).json()
    for p in asked:
        for name in ("fit", "engagement"):
            why = p[f"{name}_reasons"]
            assert why["adds_up_to"] == name
            listed = [x["points"] for x in why["positive"] + why["negative"]]
            assert why["base_score"] + sum(listed) + why["other"] == pytest.approx(why["total"])
    spec, fit_columns = crm_model.scorer.spec, crm_model.scorer.grades.fit.columns
    fit_groups = {
        label
        for label, cols in spec.reason_groups().items()
        if any(spec.feature_names[j] in fit_columns for j in cols)
    }
    fields = {x["field"] for p in asked for x in p["fit_reasons"]["positive"]}
    assert fields and fields <= fit_groups  # who the lead is, never what it did
    for p, q in zip(default, asked, strict=True):  # the default: the score's reasons only
        assert p["fit_reasons"] is None and p["engagement_reasons"] is None
        assert p["reasons"] == q["reasons"] and p["grid"] == q["grid"]
    for p, q in zip(only["predictions"], asked, strict=True):  # the two options are apart
        assert p["reasons"] is None and p["fit_reasons"] == q["fit_reasons"]


def test_a_flat_model_leaves_what_it_cannot_tell_null(flat_model):
    row = {"customer_ref": "C1", "web_visits": 3, "minutes_on_site": 20.5, "plan_interest": "Pro"}
    with client(flat_model) as c:
        (p,) = c.post("/predict", json=row).json()["predictions"]
        card = c.get("/model").json()["grades"]
    assert p["temperature"] is None and p["stage"] is None  # no dates, no stage column
    assert p["pql"] is False  # no product usage in the export: never a PQL
    assert p["fit"] in ALLOWED["fit"] and p["engagement"] in ALLOWED["engagement"]
    assert {"temperature", "stage", "pql"} <= set(card["notes"])


def test_openapi_explains_each_grade_to_a_marketer(crm_model):
    from leadml.grades import MEANING

    with client(crm_model) as c:
        schemas = c.get("/openapi.json").json()["components"]["schemas"]
    props = schemas["Prediction"]["properties"]
    for name, allowed in ALLOWED.items():
        assert props[name]["description"].startswith(MEANING[name])
        kinds = props[name]["anyOf"]
        assert {"type": "null"} in kinds  # nullable: where the model cannot tell
        if name == "pql":
            assert {"type": "boolean"} in kinds
        else:
            assert set(next(k["enum"] for k in kinds if "enum" in k)) == allowed
    for name in ("fit_reasons", "engagement_reasons"):
        assert "What made the" in props[name]["description"]
    grades_card = schemas["GradesCard"]["properties"]
    assert {"meaning", "sub_models", "temperature", "stage", "notes", "backtest"} <= set(
        grades_card
    )


def test_the_model_card_shows_the_grades(crm_model):
    with client(crm_model) as c:
        r = c.get("/model")
    assert r.status_code == 200, r.text
    card = r.json()["grades"]
    assert set(card["meaning"]) == set(ALLOWED) | {"grid"}
    assert len(card["sub_models"]["fit"]["cuts_raw"]) == 3
    cells = {row["fit"] + row["engagement"] for row in card["backtest"]["grid"]}
    assert cells == ALLOWED["grid"]  # every cell, its conversion null when it has no leads


def test_a_model_saved_before_grades_still_serves_with_nulls(tmp_path, crm_model, crm_records):
    import copy

    from leadml.model import LeadScorer

    old = copy.copy(crm_model.scorer)
    old.grades = None
    old.card = {k: v for k, v in old.card.items() if k != "grades"}
    path = old.save(tmp_path / "old")
    assert json.loads((path / "scorer.json").read_text())["grades"] is None
    assert not list(path.glob("grade_*.txt"))
    loaded = LoadedModel.build(LeadScorer.load(path), "leadml", "1", str(path), "fp")
    with client(loaded) as c:
        r = c.post("/predict", json={"leads": crm_records[:3]})
        card = c.get("/model").json()
    assert r.status_code == 200, r.text
    for p in r.json()["predictions"]:
        assert all(p[name] is None for name in ALLOWED)
        assert p["fit_reasons"] is None and p["engagement_reasons"] is None
        assert p["reasons"]["positive"]  # the score and its reasons as before
    assert card["grades"] is None
