"""The points ledger end to end: sample rules against the model, the report, the CLI, X Education."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from leadml import ledger, ledger_report, rules, synth
from leadml.cli import main
from leadml.config import Settings, TrainConfig
from leadml.train import fit, train
from tests.conftest import XEDU, XEDU_DROP

pytestmark = pytest.mark.slow
SAMPLE_RULES = Path(__file__).resolve().parents[1] / "data" / "rules" / "sample_rules.yaml"
XEDU_RULES = SAMPLE_RULES.with_name("xeducation_rules.yaml")
TRUTH_KEY = {
    "pricing_view": "page_view:pricing",
    "product_view": "page_view:product",
    "blog_view": "page_view:blog",
    "other_view": "page_view:other",
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The demo's size (20k leads): enough outcomes for the weakest true effect (+0.1)."""
    out = tmp_path_factory.mktemp("ledger") / "crm"
    synth.write_crm(synth.make_crm(20_000, seed=42), out, "csv")
    result, _ = fit(out, TrainConfig.model_validate({"model": {"baseline": False}}))
    scorer = result.scorer
    ruleset = rules.load_rules(SAMPLE_RULES, rules.rule_fields(scorer.spec))
    return out, scorer, ledger.compare(ruleset, scorer, out)


def test_sample_rules_score_a_lower_auc_than_the_model(synthetic):
    _, _, led = synthetic
    auc = led.overall.set_index("scorer")["roc_auc"]
    assert auc["manual points"] < auc["refitted rules"] < auc["leadml model"]
    loss = led.overall.set_index("scorer")["log_loss"]
    assert loss["leadml model"] < loss["manual points"]


def test_learned_points_agree_in_sign_with_the_true_effects(synthetic):
    out, _, led = synthetic
    effects = json.loads((out / "truth" / "truth.json").read_text())["effects"]
    checked = 0
    for rule, learned in zip(led.ruleset.rules, led.per_rule["learned_points"], strict=True):
        kind = rule.activity() or {"unsubscribed": "unsubscribe", "bounced": "bounce"}.get(
            rule.field
        )
        if kind is None:
            continue
        weight = effects[TRUTH_KEY.get(kind, kind)]["weight"]
        if weight != 0:
            assert np.sign(learned) == np.sign(weight), (rule.name, learned, weight)
            checked += 1
    assert checked == 13  # every behaviour with a real effect has a rule in the sample file


def test_per_rule_figures_are_consistent(synthetic):
    _, _, led = synthetic
    t = led.per_rule
    assert list(t["rule"]) == [r.name for r in led.ruleset.rules]
    assert ((t["coverage"] > 0) & (t["coverage"] < 1)).all()
    assert (t["fires"] == (t["coverage"] * led.test_leads).round()).all()
    pricing = t.set_index("rule").loc["Visited the pricing page"]
    assert pricing["conversion_when_fires"] > pricing["conversion_otherwise"]
    assert pricing["verdict"] == "under-weighted"  # truth: pricing is worth more than 10 points
    unsub = t.set_index("rule").loc["Unsubscribed"]
    assert unsub["learned_points"] < 0 and unsub["model_points"] < 0
    assert set(t["verdict"]) <= {"under-weighted", "over-weighted", "about right", "no evidence"}
    bands = led.bands.set_index(["scheme", "band"])
    assert bands.loc["leadml model"]["leads"].sum() == led.test_leads
    sql = bands.loc[("leadml model", "SQL"), "conversion"]
    assert sql > bands.loc[("leadml model", "Unqualified"), "conversion"]
    d = led.disagreements
    assert (
        set(d["manual_band"]) <= {"SQL", "Unqualified"}
        and (d["manual_band"] != d["model_band"]).all()
    )
    assert d["model_reasons"].str.len().min() > 0


def test_points_split_into_fit_and_engagement_halves(synthetic):
    _, scorer, led = synthetic
    half = dict(zip(led.per_rule["rule"], led.per_rule["half"], strict=True))
    for rule in led.ruleset.rules:
        expected = (
            "engagement" if rule.activity() or rule.field in ("unsubscribed", "bounced") else "fit"
        )
        assert half[rule.name] == expected, rule
    t = led.halves.set_index("half")
    assert t["rules"].sum() == len(led.ruleset.rules)
    assert set(t.index) == {"fit", "engagement"}
    # each half ranks leads better than chance, and the model's sub-models at least as well
    # as the marketer's half of the rules on this world
    assert (t["manual_auc"] > 0.55).all() and (t["model_auc"] >= t["manual_auc"] - 0.02).all()
    assert (t[["manual_spread", "learned_spread", "model_spread"]] > 0).all().all()


def test_report_files(synthetic, tmp_path):
    out, scorer, led = synthetic
    paths = ledger_report.write_report(led, tmp_path / "report")
    page = paths["html"].read_text()
    assert "Rule by rule" in page and page.count("data:image/png;base64,") == 2
    assert "Visited the pricing page" in page
    assert len(pd.read_csv(paths["csv"])) == len(led.ruleset.rules)
    assert "Fit and engagement" in page
    assert pd.read_csv(paths["halves"])["half"].tolist() == ["fit", "engagement"]
    suggested = rules.load_rules(paths["rules"], rules.rule_fields(scorer.spec))
    learned = led.per_rule["learned_points"].round().astype(int).tolist()
    assert [r.points for r in suggested.rules] == learned


def test_cli_compare_logs_the_report_to_the_models_run(home, crm_dir, capsys):
    settings = Settings.from_env()
    result = train(crm_dir, TrainConfig.model_validate({"model": {"baseline": False}}), settings)
    capsys.readouterr()
    code = main(
        ["-q", "rules", "compare", "--rules", str(SAMPLE_RULES), "--out", str(home / "ledger")]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "Visited the pricing page" in printed and "leadml model" in printed
    assert "input: leads         3,000 read        3,000 used          0 rejected" in printed
    assert (home / "ledger" / "ledger.html").exists()
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "ledger")}
    assert {"ledger/ledger.html", "ledger/ledger.csv", "ledger/suggested_rules.yaml"} <= arts


def test_cli_rule_errors_exit_2(home, crm_dir, crm_model, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        SAMPLE_RULES.read_text().replace("field: pricing_view_30d", "field: pricing_views")
    )
    code = main(
        [
            "-q",
            "rules",
            "compare",
            "--rules",
            str(bad),
            "--model",
            crm_model.uri,
            "--data",
            str(crm_dir),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "'Visited the pricing page'" in err and "pricing_view_30d" in err


@pytest.mark.skipif(not XEDU.exists(), reason="../shared/datasets/xeducation_leads.csv not present")
def test_xeducation_rules_run_end_to_end(tmp_path):
    cfg = TrainConfig.model_validate(
        {
            "flat": {"target": "Converted", "id_column": "Prospect ID", "drop": XEDU_DROP[1:]},
            "model": {"baseline": False},
        }
    )
    scorer = fit(XEDU, cfg)[0].scorer
    ruleset = rules.load_rules(XEDU_RULES, rules.rule_fields(scorer.spec))
    led = ledger.compare(ruleset, scorer, XEDU, cfg)
    paths = ledger_report.write_report(led, tmp_path)
    auc = led.overall.set_index("scorer")["roc_auc"]
    assert auc["manual points"] < auc["leadml model"] and auc["leadml model"] > 0.88
    assert paths["html"].exists() and "Working professional" in paths["html"].read_text()
    assert led.test_leads == 1848


def test_cli_compare_reads_a_training_config(home, crm_dir, crm_model, tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    args = [
        "-q",
        "rules",
        "compare",
        "--rules",
        str(SAMPLE_RULES),
        "--model",
        crm_model.uri,
        "--data",
        str(crm_dir),
        "--out",
        str(tmp_path / "out"),
    ]
    assert main([*args, "--config", str(missing)]) == 2
    assert "config file not found" in capsys.readouterr().err
    config = tmp_path / "config.yaml"
    config.write_text("label:\n  horizon_days: 30\n")
    assert main([*args, "--config", str(config)]) == 0
    assert (tmp_path / "out" / "ledger.csv").exists()
