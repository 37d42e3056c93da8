"""schemas.py and parsing.py: the request model made from a feature spec, and a body parsed
into validated leads with errors that name lead and field, never the value."""

from __future__ import annotations

import json

import pytest

from leadml import dataset
from leadml.config import TrainConfig
from leadml.errors import LeadmlError
from leadml.features import ColumnSpec, FeatureSpec, fit_spec
from leadml.parsing import parse_predict_body
from leadml.schemas import RequestError, RequestModel, request_body_schema

CRM = FeatureSpec("crm", "lead_id", [], [], {}, {}, observation_days=90)
FLAT = FeatureSpec(
    "flat",
    "ref",
    ["visits", "plan", "newsletter"],
    ["plan"],
    {"plan": ["Free", "Pro"]},
    {},
    [
        ColumnSpec("visits", "numeric", minimum=0),
        ColumnSpec("plan", "category", ["Free", "Pro"]),
        ColumnSpec("newsletter", "binary"),
    ],
)


def parse(spec: FeatureSpec, body, **options):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_predict_body(raw, RequestModel.from_spec(spec), 100, **options)


def test_a_crm_lead_has_its_profile_events_and_as_of():
    fields = RequestModel.from_spec(CRM).lead_type.model_fields
    assert list(fields) == [
        "lead_id",
        "created_at",
        "job_title",
        "company_size",
        "industry",
        "country",
        "lead_source",
        "events",
        "as_of",
    ]
    assert fields["lead_id"].is_required() and not fields["events"].is_required()
    assert "90 days" in fields["events"].description


def test_a_flat_lead_has_the_columns_of_its_export():
    parsed = parse(FLAT, {"ref": 7, "visits": 3, "newsletter": "yes", "colour": "red"})
    assert parsed.single and parsed.indices == [0]
    assert parsed.leads == [{"ref": "7", "visits": 3.0, "plan": None, "newsletter": True}]
    assert parsed.ignored_fields == ["colour"] and parsed.missing == [["plan"]]


def test_the_openapi_schema_has_no_personal_fields(tmp_path):
    """A flat export with an email and names: none of them is a field the service asks for."""
    from tests.conftest import make_flat

    frame = make_flat(300)
    frame["First Name"] = ["Ann", "Bob", "Cem"] * 100  # a few values, like a category
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    data = dataset.load_flat(path, target="won", id_column="customer_ref")
    spec = fit_spec(data, TrainConfig())
    body, components = request_body_schema(RequestModel.from_spec(spec))
    text = json.dumps([body, components])
    assert "web_visits" in text and "plan_interest" in text
    for personal in ("contact_email", "First Name", "Ann", "person0@example.org"):
        assert personal not in text


def test_no_model_yet_is_any_object():
    body, components = request_body_schema(None)
    assert body["type"] == "object" and components == {}


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"", 400, "empty body"),
        (b"[1", 400, "not valid JSON"),
        (b"\xff\xfe{}", 400, "UTF-16"),
        ({"leads": []}, 422, "leads is empty"),
        ({"leads": [{"lead_id": "a"}] * 101}, 413, "LEADML_MAX_BATCH"),
        ({"leads": [{"lead_id": "a"}, {"lead_id": " a "}]}, 422, "same id as lead 0"),
        ({"lead_id": "   "}, 422, "blank"),
    ],
)
def test_bad_bodies_are_request_errors_with_their_status(body, status, words):
    with pytest.raises(RequestError) as caught:
        parse(CRM, body)
    assert isinstance(caught.value, LeadmlError)  # the service maps it with the others
    assert caught.value.status == status and words in str(caught.value)


def test_errors_name_lead_and_field_but_not_the_value():
    email = "ann@example.org"
    with pytest.raises(RequestError) as caught:
        parse(CRM, {"leads": [{"lead_id": "a"}, {"lead_id": "b", "job_title": [email]}]})
    (error,) = caught.value.errors
    assert error["lead"] == 1 and error["lead_id"] == "b" and error["field"] == "job_title"
    assert email not in str(caught.value) and email not in json.dumps(caught.value.errors)


def test_skip_invalid_keeps_the_good_leads():
    body = {"leads": [{"lead_id": "a"}, {"lead_id": ""}, {"lead_id": "c", "as_of": "soon"}]}
    parsed = parse(CRM, body, skip_invalid=True)
    assert parsed.indices == [0] and [e["lead"] for e in parsed.rejected] == [1, 2]
    assert [lead["lead_id"] for lead in parsed.leads] == ["a"]


def test_a_batch_route_refuses_a_single_lead():
    with pytest.raises(RequestError) as caught:
        parse(CRM, {"lead_id": "a"}, batch_only=True)
    assert caught.value.status == 422 and caught.value.errors[0]["field"] == "leads"
