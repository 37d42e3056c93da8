"""The command line end to end on small data, as a user would run it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.cli import build_parser, main
from tests.conftest import make_flat


@pytest.mark.parametrize(
    "command", ["synth", "train", "score", "history", "promote", "store", "config", "webhooks"]
)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "usage: leadml " + command in text
    for action in build_parser()._subparsers._group_actions[0].choices[command]._actions:
        for opt in action.option_strings:
            assert opt in text


def test_store_prune_has_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["store", "prune", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--days" in text and "LEADML_STORE_RETENTION_DAYS" in text


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_contract_errors_exit_2_with_the_fix(home, capsys, flat_csv):
    assert main(["-q", "train", "--data", str(flat_csv), "--target", "Won"]) == 2
    err = capsys.readouterr().err
    assert "'Won'" in err and "Did you mean 'won'" in err and "--target" in err
    assert main(["-q", "train", "--data", str(home / "nothing.csv"), "--target", "won"]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.slow
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


@pytest.mark.slow
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


HEAVY = {
    "pandas",
    "numpy",
    "sklearn",
    "lightgbm",
    "mlflow",
    "fastapi",
    "uvicorn",
    "dask",
    "sqlalchemy",
}


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["train"],
        ["score"],
        ["serve"],
        ["rules", "compare"],
        ["history"],
        ["store", "prune"],
        ["webhooks"],
    ],
)
def test_help_imports_no_heavy_library(argv):
    """`leadml --help` answers at once: building the parser imports none of the big libraries."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "leadml.cli", *argv, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "usage: leadml" in done.stdout
    imported = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "leadml" in imported and "argparse" in imported  # the listing is what we think
    assert not imported & HEAVY


def run(argv: list[str]) -> int:
    """main's exit code, counting argparse's exit on a bad option."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def assert_one_line_exit_2(argv: list[str], capsys, *words: str) -> None:
    code = run(["-q", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "error" in err
    for word in words:
        assert word in err


@pytest.fixture
def files(home):
    """Broken inputs a person could pass."""
    (home / "bad.yaml").write_text("features: [unclosed\n")
    (home / "bad_keys.yaml").write_text("model:\n  learning_rate: 7\n  foo: 1\n")
    (home / "unknown_field.yaml").write_text(
        "thresholds: {mql: 40, sql: 70}\nrules:\n"
        "  - {name: a, field: nope, op: eq, value: 1, points: 5}\n"
    )
    (home / "a_file").write_text("x")
    (home / "folder").mkdir()
    return home


MISTAKES = {
    "missing data": (["train", "--data", "{h}/nope"], ["{h}/nope"]),
    "missing folder for synth": (["synth", "--out", "{h}/a_file/s", "--leads", "100"], ["a_file"]),
    "bad YAML config": (["train", "--data", "{h}", "--config", "{h}/bad.yaml"], ["not valid YAML"]),
    "config keys": (["train", "--data", "{h}", "--config", "{h}/bad_keys.yaml"], ["model.foo"]),
    "missing config": (["train", "--data", "{h}", "--config", "{h}/no.yaml"], ["not found"]),
    "config folder": (["train", "--data", "{h}", "--config", "{h}/folder"], ["not found"]),
    "unknown engine": (["train", "--data", "{h}", "--engine", "spark"], ["--engine"]),
    "scheduler without dask": (["train", "--data", "{h}", "--scheduler", "tcp://x:1"], ["dask"]),
    "share over 1": (["train", "--data", "{h}", "--max-reject-share", "7"], ["share"]),
    "too few leads": (["synth", "--out", "{h}/s", "--leads", "5"], ["at least 100"]),
    "csv in parts": (["synth", "--out", "{h}/s", "--format", "csv", "--parts", "3"], ["Parquet"]),
    "no version": (["promote", "--version", "999"], ["'999'"]),
    "no challenger": (["promote"], ["train first"]),
    "no model to score with": (["score", "--data", "{h}", "--out", "{h}/o.csv"], ["leadml train"]),
    "no model for rules": (["rules", "fields", "--model", "{h}/folder"], ["--model"]),
    "port out of range": (["serve", "--port", "99999"], ["65535"]),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_a_mistake_is_one_line_and_exit_2(case, files, capsys):
    argv, words = MISTAKES[case]
    h = str(files)
    assert_one_line_exit_2([a.format(h=h) for a in argv], capsys, *(w.format(h=h) for w in words))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["--target", "Nope"], "--target"),
        (["--target", "won", "--id", "Nope"], "--id"),
        (["--target", "won", "--drop", "Nope,,owner_notes"], "--drop"),
        ([], "--target"),
    ],
)
def test_flat_export_column_mistakes(argv, word, home, flat_csv, capsys):
    assert_one_line_exit_2(["train", "--data", str(flat_csv), "--sep", ";", *argv], capsys, word)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["score", "--data", "{data}", "--out", "{h}/o.csv", "--as-of", "yesterday"], "ISO 8601"),
        (["score", "--data", "{h}/a_file", "--out", "{h}/o.csv"], "a_file"),
        (["rules", "compare", "--rules", "{h}/unknown_field.yaml"], "unknown field 'nope'"),
        (["rules", "compare", "--rules", "{h}/none.yaml"], "rules file not found"),
        (["rules", "compare", "--rules", "{h}/folder"], "rules file not found"),
    ],
)
def test_mistakes_with_a_model(argv, word, files, crm_model, crm_dir, capsys):
    fill = {"h": str(files), "data": str(crm_dir)}
    argv = [a.format(**fill) for a in argv] + ["--model", crm_model.uri]
    assert_one_line_exit_2(argv, capsys, word)


def test_serve_on_a_busy_port_says_so(home, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["serve", "--port", str(port), "--workers", "1"]
        assert_one_line_exit_2(argv, capsys, f"127.0.0.1:{port}", "--port")


def test_serve_with_a_bad_worker_count_in_the_environment(home, monkeypatch, capsys):
    monkeypatch.setenv("LEADML_WORKERS", "two")
    assert_one_line_exit_2(["serve", "--port", "1"], capsys, "LEADML_WORKERS='two'")


def test_a_tracking_uri_mlflow_cannot_open_is_one_line(home, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "bogus://nowhere")
    assert_one_line_exit_2(["promote"], capsys, "bogus://nowhere", "MLFLOW_TRACKING_URI")


@pytest.mark.parametrize("command", ["score", "train"])
def test_a_data_path_that_does_not_exist_is_named_before_any_model(home, capsys, command):
    argv = [command, "--data", str(home / "missing"), "--out", str(home / "out.csv")]
    if command == "train":
        argv = argv[:3]
    assert_one_line_exit_2(argv, capsys, "missing: no such file or folder")


def test_a_model_folder_without_a_model_is_one_line(home, crm_dir, capsys):
    empty = home / "not_a_model"
    empty.mkdir()
    argv = ["score", "--data", str(crm_dir), "--model", str(empty), "--out", str(home / "s.csv")]
    assert_one_line_exit_2(argv, capsys, "scorer.json missing")


def test_several_bad_service_settings_are_named_on_one_line(home, monkeypatch, capsys):
    monkeypatch.setenv("LEADML_WORKERS", "two")
    monkeypatch.setenv("LEADML_MAX_BATCH", "0")
    assert_one_line_exit_2(["serve", "--port", "1"], capsys, "LEADML_WORKERS", "LEADML_MAX_BATCH")


def test_verbose_adds_the_traceback(home, capsys):
    code = run(["-q", "-v", "promote"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" in err and "PromotionError" in err
    assert err.strip().splitlines()[-1].startswith("error: no version given")


def test_a_bug_keeps_its_traceback(home, monkeypatch):
    from leadml import commands

    def broken(args):
        raise KeyError("a bug, not a mistake")

    monkeypatch.setattr(commands, "config", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["config"])


@pytest.mark.slow
def test_score_keeps_its_scores_and_history_prints_them(home, crm_model, crm_dir, capsys):
    """`leadml score` twice (as of two dates): `leadml history` shows both, the trend and
    what changed; an unknown lead is one line and exit 2."""
    from leadml.store import ScoreStore

    for as_of in ("2026-05-31", "2026-06-30"):
        argv = ["-q", "score", "--data", str(crm_dir), "--out", str(home / "s.csv")]
        assert main([*argv, "--model", crm_model.uri, "--as-of", as_of, "--reasons"]) == 0
        assert "scores kept, with their reasons" in capsys.readouterr().out
    scores = pd.read_csv(home / "s.csv", dtype={"lead_id": str})
    lead = scores["lead_id"].iloc[0]
    kept = ScoreStore(f"sqlite:///{home / 'store.db'}").history(lead)
    assert [r.score for r in kept][0] == scores["score"].iloc[0] and len(kept) == 2
    assert kept[0].reasons and kept[0].fingerprint  # reasons and features, for "what changed"
    assert main(["history", lead]) == 0
    out = capsys.readouterr().out
    assert f"lead {lead}: 2 score(s), newest first" in out
    assert out.count(f"v{kept[0].model_version}") == 2 and "trend: " in out
    assert "feature " in out  # engagement as of another date: features moved
    assert_one_line_exit_2(["history", "no-such-lead"], capsys, "no score kept for lead")


def test_store_prune_applies_the_retention(home, monkeypatch, capsys):
    from datetime import UTC, datetime, timedelta

    from leadml.store import ScoreRecord, ScoreStore

    store = ScoreStore(f"sqlite:///{home / 'store.db'}")
    now = datetime.now(UTC)
    store.record(
        [
            ScoreRecord("L1", now - timedelta(days=days), "leadml", "1", 0.2, 20, "MQL")
            for days in (400, 100, 1)
        ]
    )
    assert_one_line_exit_2(["store", "prune"], capsys, "LEADML_STORE_RETENTION_DAYS")
    assert main(["store", "prune", "--days", "365"]) == 0
    assert "1 scores older than 365 days deleted" in capsys.readouterr().out
    monkeypatch.setenv("LEADML_STORE_RETENTION_DAYS", "30")
    assert main(["store", "prune"]) == 0
    assert "1 scores older than 30 days deleted" in capsys.readouterr().out
    assert [r.scored_at.date() for r in store.history("L1")] == [(now - timedelta(days=1)).date()]
    monkeypatch.setenv("LEADML_STORE_URL", "off")
    assert_one_line_exit_2(["store", "prune"], capsys, "LEADML_STORE_URL=off")
