"""Personal data never leaves the input: not in rejects, logs, MLflow, model files, the
service's schema or answers (issue 13, section 5).

A flat export with the personal columns real CRMs have (emails, a low-cardinality "Account
Owner" of sales reps' addresses, "Owner Name", phone numbers), email-like and phone-like
values inside an ordinary category column, and a mis-delimited row; then train (registered
in MLflow and exported), score, serve, and grep everything written or answered for every
address, number and name of the input.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from leadml.api import create_app
from leadml.cli import main
from leadml.config import ServeSettings, Settings
from leadml.local_engine import input_example
from leadml.model import LeadScorer
from leadml.serving import LoadedModel

pytestmark = pytest.mark.slow
OWNERS = [f"rep{i}@xeducation.example" for i in range(5)]
OWNER_NAMES = [
    "Maria Oyelaran",
    "Tobias Whitcombe",
    "Ines Valdivieso",
    "Kwame Asantewaa",
    "Lotte Brinkhuis",
]
PARTNER = "leads@partner-agency.example"  # an address typed into the source field
HOTLINE = "+1 (555) 014-2233"  # a phone number typed into the source field


def _export(n: int = 1200, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    visits = rng.poisson(4, n)
    source = rng.choice(
        ["Google", "Referral", "Direct", PARTNER, HOTLINE], n, p=[0.4, 0.3, 0.2, 0.05, 0.05]
    )
    owner = rng.integers(0, 5, n)
    y = rng.random(n) < 1 / (1 + np.exp(-(-2 + 0.4 * visits + (source == "Referral"))))
    return pd.DataFrame(
        {
            "Prospect ID": [f"P-{i:05d}" for i in range(n)],
            "Email": [f"lead{i}@mail.example" for i in range(n)],
            "Phone": [f"+44 7700 9{i:05d}" for i in range(n)],
            "Account Owner": np.asarray(OWNERS)[owner],
            "Owner Name": np.asarray(OWNER_NAMES)[owner],
            "TotalVisits": visits,
            "Lead Source": source,
            "Converted": y.astype(int),
        }
    )


def _secrets(frame: pd.DataFrame) -> list[str]:
    cols = ["Email", "Phone", "Account Owner", "Owner Name"]
    return sorted({*frame[cols].to_numpy().ravel().tolist(), PARTNER, HOTLINE})


def test_no_personal_value_reaches_any_artefact_log_or_answer(home, capsys, caplog):
    frame = _export()
    path = home / "export.csv"
    frame.to_csv(path, index=False)
    lines = path.read_text().splitlines()
    lines[7] += ",stray@mail.example,+49 151 2345 6789"  # a row with two fields too many
    path.write_text("\n".join(lines) + "\n")
    secrets = [*_secrets(frame), "stray@mail.example", "+49 151 2345 6789"]

    caplog.set_level(logging.DEBUG)
    base = ["--data", str(path)]
    assert main(["-v", "train", *base, "--target", "Converted", "--id", "Prospect ID"]) == 0
    assert main(["-v", "score", *base, "--out", str(home / "out" / "scores.csv")]) == 0
    printed = capsys.readouterr()
    scorer = LeadScorer.load(home / "models" / "champion")
    skipped = scorer.spec.skipped
    for col in ("Email", "Phone", "Account Owner", "Owner Name"):
        assert col in skipped and "personal data" in skipped[col]
    assert "Lead Source" in scorer.spec.feature_names  # the column stays, its odd values go
    assert not {PARTNER, HOTLINE} & set(scorer.spec.categories["Lead Source"])

    model = LoadedModel.build(scorer, "leadml", "1", str(home / "models" / "champion"), "fp")
    lead = frame.drop(columns=["Converted"]).iloc[3].to_dict() | {"Lead Source": PARTNER}
    lead = {k: (v.item() if hasattr(v, "item") else v) for k, v in lead.items()}
    with TestClient(create_app(Settings.from_env(), ServeSettings(reload_seconds=0), model)) as c:
        answers = [
            c.get("/openapi.json").text,
            c.get("/model").text,
            c.get("/ledger").text,
            c.post("/predict", json=lead).text,
            c.post("/predict", json={"leads": [lead]}).text,
        ]
    assert '"probability"' in answers[3]

    written = {p: p.read_bytes() for p in home.rglob("*") if p.is_file() and p != path}
    assert len(written) > 10  # the MLflow store, its artefacts, the export, scores, rejects
    assert all(s.encode() in path.read_bytes() for s in secrets)  # they were all in the input
    said = printed.out + printed.err + "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        needle = secret.encode()
        assert not [p for p, b in written.items() if needle in b], secret
        assert secret not in said, secret
        for answer in answers:
            assert secret not in answer, secret
    scores = pd.read_csv(home / "out" / "scores.csv", dtype=str)
    assert len(scores) == len(frame) - 1  # the mis-delimited row is a reject, not a score


def test_input_examples_never_carry_personal_values(crm_model):
    leads = pd.DataFrame(
        {
            "lead_id": ["1", "2"],
            "created_at": pd.Timestamp("2026-01-01"),
            "job_title": ["VP", "call me +44 7700 900123"],
            "company_size": ["jo@x.example", "1-10"],
            "industry": None,
            "country": None,
            "lead_source": None,
            "email": ["a@b.example", "c@d.example"],
        }
    )
    example = input_example(
        crm_model.scorer.spec,
        leads,
        leads.iloc[:0][["lead_id"]].assign(
            occurred_at=pd.Timestamp("2026-01-01"), event_type="webinar", page=""
        ),
        np.array(["2026-02-01", "2026-02-01"], dtype="datetime64[ns]"),
    )
    text = example.to_json()
    assert "jo@x.example" not in text and "a@b.example" not in text and "email" not in example
    assert "1-10" in text
