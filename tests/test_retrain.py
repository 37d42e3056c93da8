"""`leadml retrain`: the readiness gate, the guard against the champion, and the why it writes
(JSON under the home, a registry tag, the exit code). The guard inside `promote_if_better`
is tested fast with the fake registry of test_promote.py; the command on a real MLflow store
(slow)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from leadml import promote, tracking
from leadml.cli import main
from leadml.config import Settings
from tests.test_promote import FakeTest, Registry

SMALL = {"model": {"baseline": False, "max_rounds": 50}}
WORSE = {"model": {"baseline": False, "max_rounds": 1, "num_leaves": 2}}


# ---- the guard in promote_if_better (fake registry) ---------------------------------------


@pytest.fixture
def guard_leads():
    """2,000 test leads, the champion's probabilities and a challenger's a little worse
    (about 0.01 AUC less, the whole interval below 0 and above -0.05)."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 2000).astype(float)
    champion = y + rng.normal(0, 0.6, len(y))
    slightly = champion + rng.normal(0, 0.15, len(y))
    return y, 1 / (1 + np.exp(-champion)), 1 / (1 + np.exp(-slightly))


def _guarded(settings, y, theirs, mine, tolerance, metric="roc_auc"):
    from sklearn.metrics import roc_auc_score

    return promote.promote_if_better(
        settings,
        "2",
        float(roc_auc_score(y, mine)),
        FakeTest(theirs),
        y,
        metric,
        guard_tolerance=tolerance,
        p_test=mine,
    )


def test_the_guard_promotes_a_small_loss_within_the_tolerance_the_strict_rule_refuses(
    home, monkeypatch, guard_leads
):
    y, champion, slightly = guard_leads
    reg = Registry(monkeypatch, champion="1")
    strict = _guarded(Settings.from_env(home), y, champion, slightly, tolerance=None)
    assert not strict.promoted and strict.comparison is None and reg.promoted == []
    done = _guarded(Settings.from_env(home), y, champion, slightly, tolerance=0.05)
    assert done.promoted and reg.promoted == [("2", True)] and done.champion == "1"
    c = done.comparison
    assert c is not None and c.passes and c.tolerance == 0.05 and c.leads == len(y)
    assert c.difference == pytest.approx(c.challenger_auc - c.champion_auc)
    assert c.low <= c.difference <= c.high < 0 and c.low >= -0.05
    assert done.note == c.note and "within the tolerance 0.050" in done.note


def test_the_guard_keeps_out_a_loss_beyond_the_tolerance(home, monkeypatch, guard_leads):
    y, champion, slightly = guard_leads
    reg = Registry(monkeypatch, champion="1")
    done = _guarded(Settings.from_env(home), y, champion, slightly, tolerance=0.0)
    assert not done.promoted and reg.promoted == [] and done.export_path is None
    assert done.comparison is not None and done.comparison.low < 0
    assert "worse beyond the tolerance 0.000" in done.note


def test_refusals_come_before_the_guard_and_log_loss_keeps_the_strict_rule(
    home, monkeypatch, guard_leads
):
    y, champion, _ = guard_leads
    why = "v2 takes other input than champion v1"
    reg = Registry(monkeypatch, champion="1", refusal=why)
    done = _guarded(Settings.from_env(home), y, champion, champion, tolerance=0.5)
    assert not done.promoted and done.note == why and reg.promoted == []
    Registry(monkeypatch, champion="1")
    by_loss = _guarded(Settings.from_env(home), y, champion, champion, 0.5, metric="log_loss")
    assert by_loss.comparison is None and "log_loss" in by_loss.note


def test_the_guard_without_the_challengers_probabilities_is_a_bug(home, monkeypatch):
    Registry(monkeypatch, champion="1")
    with pytest.raises(ValueError, match="p_test"):
        promote.promote_if_better(
            Settings.from_env(home),
            "2",
            0.7,
            FakeTest(np.array([0.1, 0.9])),
            np.array([0.0, 1.0]),
            "roc_auc",
            guard_tolerance=0.02,
        )


def test_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as done:
        main(["retrain", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for code, word in (("0", "promoted"), ("1", "kept"), ("2", "a mistake"), ("3", "not ready")):
        assert f"  {code}  {word}" in text


# ---- the command on a real store (slow) ---------------------------------------------------


def _config(folder: Path, changes: dict) -> str:
    path = folder / f"config-{len(list(folder.glob('config-*')))}.yaml"
    path.write_text(yaml.safe_dump(changes))
    return str(path)


def _latest(settings: Settings) -> dict:
    return json.loads((settings.home / "retrain" / "latest.json").read_text())


def _versions(settings: Settings) -> list[str]:
    found = tracking.client(settings).search_model_versions(f"name='{settings.model_name}'")
    return sorted(str(v.version) for v in found)


def _tag(settings: Settings, version: str) -> str | None:
    mv = tracking.client(settings).get_model_version(settings.model_name, version)
    return mv.tags.get(tracking.RETRAIN_TAG)


@pytest.fixture(scope="module")
def first(tmp_path_factory, crm_dir):
    """A home where the first `leadml retrain` ran: (home, exit code, what it printed)."""
    home = tmp_path_factory.mktemp("retrain") / "home"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LEADML_HOME", str(home))
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.delenv("LEADML_MODEL_NAME", raising=False)
        config = _config(home.parent, SMALL)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["-q", "retrain", "--data", str(crm_dir), "--config", config])
    return home, code, out.getvalue()


@pytest.fixture
def copied(first, tmp_path, monkeypatch) -> Settings:
    """A private copy of `first`'s home (its store still reads the original's artefacts)."""
    home = tmp_path / "home"
    shutil.copytree(first[0], home, symlinks=True)
    monkeypatch.setenv("LEADML_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LEADML_MODEL_NAME", raising=False)
    return Settings.from_env()


@pytest.mark.slow
def test_the_first_retrain_promotes_and_writes_why(first, copied):
    _, code, printed = first
    assert code == 0
    why = _latest(copied)
    assert why["decision"] == "promoted" and why["dry_run"] is False
    assert why["challenger"]["version"] == "1" and why["champion"]["version"] is None
    assert why["sentence"].startswith("v1 promoted to champion: no champion yet")
    assert why["sentence"] in printed and "latest.json" in printed
    # readiness counted the test slice: the leads the training logged as its test leads
    run_id = tracking.client(copied).get_model_version(copied.model_name, "1").run_id
    leads = tracking.run_metrics(copied, run_id)["test_leads"]
    assert why["readiness"]["ready"] and why["readiness"]["leads"] == leads >= 1000
    assert why["readiness"]["conversions"] >= 100
    assert tracking.alias_version(copied, tracking.CHAMPION) == "1"
    assert _tag(copied, "1") == why["sentence"]
    dated = [p for p in (copied.home / "retrain").glob("*.json") if p.name != "latest.json"]
    assert len(dated) == 1 and json.loads(dated[0].read_text()) == why


@pytest.mark.slow
def test_too_little_matured_data_registers_nothing_and_exits_3(copied, tmp_path, crm_dir, capsys):
    config = _config(tmp_path, {**SMALL, "monitor": {"min_leads": 100_000}})
    assert main(["-q", "retrain", "--data", str(crm_dir), "--config", config]) == 3
    assert "need 100,000" in capsys.readouterr().out
    assert _versions(copied) == ["1"]
    assert tracking.alias_version(copied, tracking.CHALLENGER) == "1"
    why = _latest(copied)
    assert why["decision"] == "not ready" and not why["readiness"]["ready"]
    assert why["challenger"]["version"] is None and why["difference"] is None


@pytest.mark.slow
def test_a_challenger_worse_beyond_the_tolerance_is_kept_out(copied, tmp_path, crm_dir):
    export = (copied.export_dir / "champion").resolve()
    config = _config(tmp_path, WORSE)
    assert main(["-q", "retrain", "--data", str(crm_dir), "--config", config]) == 1
    assert tracking.alias_version(copied, tracking.CHAMPION) == "1"
    assert tracking.alias_version(copied, tracking.CHALLENGER) == "2"
    assert (copied.export_dir / "champion").resolve() == export
    why = _latest(copied)
    assert why["decision"] == "kept" and why["tolerance"] == 0.02
    assert (why["challenger"]["version"], why["champion"]["version"]) == ("2", "1")
    mine, theirs = why["challenger"]["roc_auc"], why["champion"]["roc_auc"]
    low, high = why["difference"]["interval_90"]
    assert why["difference"]["roc_auc"] == pytest.approx(mine - theirs)
    assert low <= mine - theirs <= high and high < -0.02
    assert why["sentence"].startswith("v2 kept as challenger, champion v1 stays")
    assert _tag(copied, "2") == why["sentence"]


@pytest.mark.slow
def test_a_wide_tolerance_lets_the_same_challenger_in_and_a_dry_run_changes_nothing(
    copied, tmp_path, crm_dir
):
    config = _config(tmp_path, WORSE)
    args = ["-q", "retrain", "--data", str(crm_dir), "--config", config, "--tolerance", "0.5"]
    before = sorted((copied.home / "retrain").iterdir())
    assert main([*args, "--dry-run"]) == 0
    assert sorted((copied.home / "retrain").iterdir()) == before and _versions(copied) == ["1"]
    assert main(args) == 0
    assert tracking.alias_version(copied, tracking.CHAMPION) == "2"
    assert tracking.alias_version(copied, tracking.PREVIOUS) == "1"  # leadml rollback's way back
    why = _latest(copied)
    assert why["decision"] == "promoted" and why["tolerance"] == 0.5
    assert why["difference"]["roc_auc"] < 0  # worse, but within the tolerance
