"""The command line end to end on small data, as a user would run it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.cli import build_parser, main
from tests.conftest import make_flat

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("command", ["synth", "train", "score", "promote", "config"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "usage: leadml " + command in text
    for action in build_parser()._subparsers._group_actions[0].choices[command]._actions:
        for opt in action.option_strings:
            assert opt in text


def test_synth_train_score_end_to_end(home, capsys):
    data = home / "data" / "sample"
    assert main(["-q", "synth", "--out", str(data), "--leads", "2500", "--seed", "5"]) == 0
    assert main(["-q", "train", "--data", str(data)]) == 0
    report = capsys.readouterr().out
    for expected in (
        "roc_auc",
        "best possible",
        "SQL",
        "MQL",
        "Unqualified",
        "promoted to champion",
        "exported to",
    ):
        assert expected in report
    out = home / "out" / "scores.csv"
    assert main(["-q", "score", "--data", str(data), "--out", str(out)]) == 0
    scores = pd.read_csv(out)
    assert len(scores) == 2500 and scores["lead_id"].is_unique
    assert (
        set(scores["band"]) <= {"SQL", "MQL", "Unqualified"}
        and scores["score"].between(1, 99).all()
    )
    np.testing.assert_array_equal(
        scores["score"], np.clip(np.rint(scores["probability"] * 100), 1, 99)
    )


def test_unseen_flat_export_semicolon_yes_no(home, capsys):
    """A flat CSV the project has never seen: ';'-separated, yes/no target, only --target/--sep/--drop."""
    train_path = home / "crm_export.csv"
    make_flat(2000, seed=8).to_csv(train_path, sep=";", index=False)
    assert (
        main(
            [
                "-q",
                "train",
                "--data",
                str(train_path),
                "--target",
                "won",
                "--sep",
                ";",
                "--drop",
                "owner_notes",
            ]
        )
        == 0
    )
    report = capsys.readouterr().out
    assert "flat" in report and "promoted to champion" in report
    new = make_flat(300, seed=9).drop(columns=["won"]).astype(object)
    new.loc[3, "web_visits"] = "lots"
    new.loc[7, "minutes_on_site"] = "-inf"
    new_path = home / "new_leads.csv"
    new.to_csv(new_path, sep=";", index=False)
    out = home / "out" / "new_scores.csv"
    assert main(["-q", "score", "--data", str(new_path), "--out", str(out), "--sep", ";"]) == 0
    scores = pd.read_csv(out)
    rejects = pd.read_csv(home / "out" / "new_scores.rejects.csv")
    assert len(scores) + len(rejects) == 300
    assert rejects["row"].tolist() == [4, 8] and set(rejects["field"]) == {
        "web_visits",
        "minutes_on_site",
    }
    assert set(scores["row_id"].astype(str)) == {str(i) for i in range(1, 301)} - {"4", "8"}


def test_contract_errors_exit_2_with_the_fix(home, capsys, flat_csv):
    assert main(["-q", "train", "--data", str(flat_csv), "--target", "Won"]) == 2
    err = capsys.readouterr().err
    assert "'Won'" in err and "Did you mean 'won'" in err and "--target" in err
    assert main(["-q", "train", "--data", str(home / "nothing.csv"), "--target", "won"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_score_without_any_model_says_how_to_get_one(home, flat_csv, capsys):
    code = main(
        [
            "-q",
            "score",
            "--data",
            str(flat_csv),
            "--out",
            str(home / "o.csv"),
            "--model",
            str(home / "models" / "champion"),
        ]
    )
    assert code == 2
    assert "leadml train" in capsys.readouterr().err


def test_personal_data_never_reaches_logs_or_the_mlflow_run(home, capsys, caplog):
    import logging

    data = home / "data" / "pii"
    assert main(["-q", "synth", "--out", str(data), "--leads", "1500", "--seed", "6"]) == 0
    leads = pd.read_csv(data / "leads.csv")
    caplog.set_level(logging.DEBUG)
    assert main(["-q", "-v", "train", "--data", str(data)]) == 0
    assert (
        main(["-q", "-v", "score", "--data", str(data), "--out", str(home / "out" / "s.csv")]) == 0
    )
    text = capsys.readouterr()
    logged = text.out + text.err + "\n".join(r.getMessage() for r in caplog.records)
    stored = "\n".join(
        p.read_text(errors="ignore")
        for p in (home / "mlruns").rglob("*")
        if p.is_file() and p.suffix in {".json", ".yaml", ".csv", ".txt", ""}
    )
    for value in list(leads["email"].head(200)) + list(leads["phone"].head(200)):
        assert value not in logged
        assert value not in stored
    assert "@example.com" not in logged + stored
