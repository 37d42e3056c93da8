"""leadml monitor end to end, against synthetic later periods whose answers are known: a
model trained on today's data, a later period scored into the store at its cut-off, then
the command as a user runs it. Undrifted periods must pass (no false alarm over 10 seeds);
drifted ones must flag every drifted feature (synth's truth.json says which) and at most
one other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leadml import cli, synth

pytestmark = pytest.mark.slow
LEADS = 3000


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A home with a champion trained on the reference period (3,000 leads, seed 1)."""
    home = tmp_path_factory.mktemp("monitor_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEADML_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("LEADML_STORE_URL", f"sqlite:///{home / 'unused.db'}")
        synth.write_crm(synth.make_crm(LEADS, seed=1), home / "ref")
        assert cli.main(["-q", "train", "--data", str(home / "ref")]) == 0
    return home


def later(
    trained: Path,
    where: Path,
    monkeypatch,
    seed: int,
    drift: str = "",
    concept: bool = False,
    leads: int = LEADS,
) -> tuple[Path, dict]:
    """A later period written, scored at its cut-off into a store of its own; (folder, truth)."""
    monkeypatch.setenv("LEADML_HOME", str(trained))
    monkeypatch.setenv("LEADML_STORE_URL", f"sqlite:///{where / f'store-{seed}.db'}")
    data = where / f"later-{seed}"
    names = synth.check_drift(drift.split(",")) if drift else ()
    made = synth.make_crm(leads, seed=seed, later=True, drift=names, concept=concept)
    synth.write_crm(made, data)
    truth = json.loads((data / "truth" / "truth.json").read_text())
    argv = ["-q", "score", "--data", str(data), "--out", str(where / f"scores-{seed}.csv")]
    assert cli.main([*argv, "--as-of", truth["as_of"]]) == 0
    return data, truth


def monitor(data: Path, out: Path, *extra: str) -> tuple[int, dict]:
    code = cli.main(["-q", "monitor", "--data", str(data), "--out", str(out), *extra])
    return code, json.loads((out / "latest.json").read_text())


def test_undrifted_periods_raise_no_alarm_over_ten_seeds(trained, tmp_path, monkeypatch):
    seen = {}
    for seed in range(11, 21):
        data, truth = later(trained, tmp_path, monkeypatch, seed)
        assert truth["drift"]["derived"] == []
        code, result = monitor(data, tmp_path / f"report-{seed}", "--no-mlflow")
        seen[seed] = (code, result["verdict"], result["reasons"])
        assert result["readiness"]["ready"], result["readiness"]
    assert all(code == 0 for code, _, _ in seen.values()), seen


@pytest.mark.parametrize("drift", ["company_size,lead_source", "country,webinar", "seniority"])
def test_drifted_features_are_all_flagged_and_hardly_any_other(
    trained, tmp_path, monkeypatch, drift
):
    data, truth = later(trained, tmp_path, monkeypatch, 31, drift)
    code, result = monitor(data, tmp_path / "report", "--no-mlflow")
    assert code in (1, 2)
    flagged = set(result["drift"]["drifted"])
    must = set(truth["drift"]["derived"])
    may = set(truth["drift"]["affected"])
    assert must <= flagged, (must, flagged)
    assert len(flagged - must - may) <= 1, flagged - must - may
    assert result["verdict"] in ("warn", "alert")
    assert any("check the data feed" in a for a in result["actions"])


def test_a_concept_change_is_seen_in_the_outcomes_logged_and_reported(
    trained, tmp_path, monkeypatch
):
    data, _ = later(trained, tmp_path, monkeypatch, 41, concept=True)
    code, result = monitor(data, tmp_path / "report")  # with its MLflow run
    assert code in (1, 2)
    assert any("converts" in r or "ranking weaker" in r for r in result["reasons"]), result
    assert any(a.startswith("retrain") for a in result["actions"])
    html = (tmp_path / "report" / "latest.html").read_text()
    assert result["verdict"].upper() in html and "http://" not in html
    import mlflow

    from leadml import tracking
    from leadml.config import Settings

    experiment = tracking.connect(Settings.from_env())
    runs = mlflow.search_runs([experiment], filter_string="tags.`leadml.run` = 'monitor'")
    assert len(runs) >= 1 and runs.iloc[0]["tags.leadml.verdict"] == result["verdict"]


def test_too_little_matured_data_is_not_an_alarm(trained, tmp_path, monkeypatch, capsys):
    data, _ = later(trained, tmp_path, monkeypatch, 51, "company_size", leads=600)
    code, result = monitor(data, tmp_path / "report", "--no-mlflow")
    assert (code, result["verdict"]) == (0, "not_ready")
    assert "not enough matured data" in result["reasons"][0]
    assert result["drift"]["drifted"]  # still shown, just not judged
    assert "NOT_READY" in capsys.readouterr().out


def test_an_outcomes_file_with_bad_rows_and_the_errors_that_exit_3(
    trained, tmp_path, monkeypatch, capsys
):
    import pandas as pd

    data, truth = later(trained, tmp_path, monkeypatch, 61)
    leads = pd.read_csv(data / "leads.csv")[["lead_id", "converted", "converted_at"]]
    leads["converted"] = leads["converted"].astype(object)
    leads.loc[3, "converted"] = "maybe"
    leads.loc[5, "lead_id"] = leads.loc[6, "lead_id"]  # a repeated id
    leads.to_csv(tmp_path / "outcomes.csv", index=False)
    until = (pd.Timestamp(truth["as_of"]) + pd.Timedelta(days=30)).date().isoformat()
    out = tmp_path / "report"
    code = cli.main(
        [
            "-q",
            "monitor",
            "--outcomes",
            str(tmp_path / "outcomes.csv"),
            "--out",
            str(out),
            "--observed-until",
            until,
            "--no-mlflow",
        ]
    )
    assert code == 0
    (rejects,) = out.glob("monitor-*-rejects.csv")
    rows = pd.read_csv(rejects)
    assert sorted(rows["field"]) == ["converted", "lead_id"] and len(rows) == 2
    assert "outcomes" in capsys.readouterr().out
    # no outcomes at all, or none scored in the period: one line, exit 3 (2 means alert)
    assert cli.main(["-q", "monitor"]) == 3
    assert cli.main(["-q", "monitor", "--data", str(data), "--until", "2026-01-01"]) == 3
    err = capsys.readouterr().err
    assert "--data CRM_FOLDER or --outcomes FILE" in err and "Traceback" not in err
