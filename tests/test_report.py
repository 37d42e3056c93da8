"""What train and score print, given a result object written here: rows in = used + rejected
per table, how the files were read, the rejects file, metrics against the baseline, the band
backtest, where the model went; counts and reasons only, never a lead's values or ids."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from leadml import report
from leadml.accounting import Rejects, TableCount
from leadml.bands import BandThresholds


def _lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_input_lines_one_per_table_then_notes_then_the_rejects_file(capsys):
    tables = {
        "leads": TableCount(
            "leads", 3001, {"duplicate id (the first row with this id is used)": 1}
        ),
        "events": {
            "read": 12,
            "used": 10,
            "rejected": 2,
            "reasons": [["bad time", 2]],
        },  # as in JSON
    }
    report.print_input(tables, ["leads.csv: read as ';'-separated"], Path("out/x.rejects.csv"))
    lines = _lines(capsys)
    assert len(lines) == 4
    assert lines[0].startswith("input: leads") and "3,001 read" in lines[0]
    assert "3,000 used" in lines[0] and "(1 duplicate id)" in lines[0]
    assert (
        lines[1].startswith("       events")
        and "10 used" in lines[1]
        and "(2 bad time)" in lines[1]
    )
    assert lines[2] == "       leads.csv: read as ';'-separated"
    assert lines[3] == "       rejects: out/x.rejects.csv"


def test_no_rejects_file_no_line_for_it(capsys):
    report.print_input({"leads": TableCount("leads", 5, {})}, [], None)
    assert [line for line in _lines(capsys) if "rejects" in line] == []


def test_the_input_report_never_shows_a_rejected_lead_s_id(capsys):
    r = Rejects()
    r.add("leads", "export.csv", [3], ["ana@example.com"], "web_visits", "not a finite number")
    r.add("leads", "export.csv", [7], ["C000123"], "web_visits", "not a finite number")
    report.print_input(r.counts({"leads": 100}), [], Path("out/train-rejects.csv"))
    out = "\n".join(_lines(capsys))
    assert "2 rejected (2 not a finite number)" in out
    assert "ana@example.com" not in out and "C000123" not in out


def _result(**changes) -> SimpleNamespace:
    metrics = {"roc_auc": 0.81234, "pr_auc": 0.5, "log_loss": 0.4, "brier": 0.12, "ece": 0.01}
    result = SimpleNamespace(
        metrics={**metrics, "leads": 1234},
        baseline={"roc_auc": 0.7, "pr_auc": 0.4, "log_loss": 0.45, "brier": 0.13, "ece": 0.02},
        bayes=None,
        data_summary={
            "kind": "crm",
            "path": "data/sample",
            "rows": 12000,
            "conversion_rate": 0.1234,
            "split": "time (by cut-off)",
            "cutoffs": ["2026-06-30", "2026-05-31", "2026-05-01"],
            "horizon_days": 30,
            "tables": {"leads": {"read": 3000, "used": 3000, "rejected": 0, "reasons": []}},
            "read_notes": [],
        },
        rejects_path=Path("/home/me/out/train-rejects.csv"),
        thresholds=BandThresholds(sql=0.4, mql=0.15, policy="precision"),
        band_table=pd.DataFrame({"band": ["SQL", "MQL", "Unqualified"], "leads": [10, 20, 30]}),
        warnings=["leakage guard: column 'stage' ..."],
        run_id=None,
        version=None,
        promoted=False,
        promotion_note="",
        export_path=None,
        grades={},
        scorer=SimpleNamespace(card={}),
    )
    for key, value in changes.items():
        setattr(result, key, value)
    return result


SETTINGS = SimpleNamespace(tracking_uri="sqlite:////home/me/mlruns/mlflow.db", model_name="leadml")


def test_train_report_data_input_metrics_bands_and_warnings(capsys):
    report.print_train_report(_result(), SETTINGS)
    out = capsys.readouterr().out
    assert (
        "data: crm data/sample | 12,000 training rows, conversion 12.3%, split time (by cut-off)"
        in out
    )
    assert "cut-offs 2026-05-01 .. 2026-06-30, horizon 30 days" in out  # oldest first
    assert "input: leads" in out and "rejects: /home/me/out/train-rejects.csv" in out
    assert "test slice: 1,234 leads" in out
    roc = next(line for line in out.splitlines() if line.startswith("roc_auc"))
    assert roc.split() == ["roc_auc", "0.8123", "0.7000", "-"]  # no best possible: not synthetic
    assert "'best possible' is the Bayes-optimal" not in out
    assert "bands (precision: SQL at p >= 0.400, MQL at p >= 0.150)" in out
    assert "Unqualified" in out
    assert "WARNING: leakage guard: column 'stage' ..." in out
    assert "MLflow run" not in out and "champion exported" not in out  # not registered


def test_train_report_on_synthetic_data_shows_the_gap_to_the_best_possible(capsys):
    bayes = {"roc_auc": 0.85, "pr_auc": 0.6, "log_loss": 0.35, "brier": 0.1, "ece": 0.0}
    report.print_train_report(_result(bayes=bayes, baseline=None), SETTINGS)
    out = capsys.readouterr().out
    roc = next(line for line in out.splitlines() if line.startswith("roc_auc"))
    assert roc.split() == ["roc_auc", "0.8123", "-", "0.8500"]
    assert "AUC gap +0.0377" in out  # 0.85 - 0.81234


@pytest.mark.parametrize("promoted", [True, False])
def test_train_report_says_where_the_model_went(capsys, promoted):
    result = _result(
        run_id="abc123",
        version="4",
        promoted=promoted,
        promotion_note="roc_auc 0.8123 vs champion v3 0.8000 on the same test leads",
        export_path=Path("/home/me/models/leadml/champion") if promoted else None,
    )
    report.print_train_report(result, SETTINGS)
    out = capsys.readouterr().out
    assert "MLflow run abc123 in sqlite:////home/me/mlruns/mlflow.db" in out
    verdict = "promoted to champion" if promoted else "not promoted"
    assert (
        f"registered leadml v4 as challenger; {verdict} "
        "(roc_auc 0.8123 vs champion v3 0.8000 on the same test leads)"
    ) in out
    assert ("champion exported to /home/me/models/leadml/champion" in out) is promoted


def test_train_report_shows_the_grid_the_groups_and_what_is_missing(capsys):
    grid = pd.DataFrame(
        [(f, e, 10, 0.5 if f + e == "A1" else 0.1) for f in "ABCD" for e in "1234"],
        columns=["fit", "engagement", "leads", "conversion"],
    )
    temperature = pd.DataFrame(
        {"group": ["hot", "warm", "cold"], "leads": [5, 0, 20], "conversion": [0.4, None, 0.05]}
    )
    card = {"grades": {"notes": {"pql": "no product-usage data: pql is always false"}}}
    report.print_train_report(
        _result(
            grades={"grid": grid, "temperature": temperature}, scorer=SimpleNamespace(card=card)
        ),
        SETTINGS,
    )
    out = capsys.readouterr().out
    rows = out[out.index("fit x engagement grid") :].splitlines()
    assert rows[2].split()[:3] == ["A", "50%", "("] and rows[5].startswith("D")
    assert "temperature: hot 40% (5), cold 5% (20)" in out  # an empty group is left out
    assert "pql: no product-usage data: pql is always false" in out
