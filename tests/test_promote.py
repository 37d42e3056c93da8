"""The promotion decision on its own: the leakage guard's findings, and champion or not for a
new version, with the registry replaced by fakes (a real registry: test_promotion.py, slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadml import evaluate, promote, tracking
from leadml.config import Settings, TrainConfig
from leadml.errors import ModelError
from leadml.evaluate import LeakFinding
from leadml.features import FeatureSpec
from leadml.train import TrainResult

# the champion's probabilities on four test leads, and what they are worth:
# AUC 3/4 (the 0.4 positive ranks below the 0.6 negative), log loss -(ln 0.9 + ln 0.4) / 2
Y_TEST = np.array([0.0, 0.0, 1.0, 1.0])
CHAMPION_P = np.array([0.1, 0.6, 0.4, 0.9])
CHAMPION_AUC = 0.75
CHAMPION_LOG_LOSS = float(-(np.log(0.9) + np.log(0.4)) / 2)


def _result(metrics: dict, warnings: list[str] | None = None, version: str = "2") -> TrainResult:
    return TrainResult(
        metrics=metrics,
        baseline=None,
        bayes=None,
        band_table=pd.DataFrame(),
        thresholds=None,  # type: ignore[arg-type]  # not read by promotion
        data_summary={},
        warnings=warnings or [],
        rejects_path=None,
        scorer=None,  # type: ignore[arg-type]
        version=version,
    )


class FakeTest:
    """Test leads the champion scores as `p` (None: it cannot score them)."""

    def __init__(self, p):
        self.p = p

    def score_test(self, scorer):
        return self.p


class Registry:
    """The tracking functions promotion calls, as fakes: who is champion, what is refused."""

    def __init__(self, monkeypatch, champion: str | None, refusal: str | None = None, load=None):
        self.promoted: list[tuple[str, bool]] = []
        monkeypatch.setattr(tracking, "reconcile", lambda settings: [])
        monkeypatch.setattr(tracking, "alias_version", lambda settings, alias: champion)
        monkeypatch.setattr(tracking, "refusal", lambda settings, version: refusal)
        monkeypatch.setattr(tracking, "load_scorer", load or (lambda settings, uri: object()))
        monkeypatch.setattr(tracking, "promote", self._promote)

    def _promote(self, settings, version, *, force=False):
        self.promoted.append((version, force))
        return Path("/exports/champion")


@pytest.fixture
def settings(home) -> Settings:
    return Settings.from_env(home)


def _decide(settings, result, metric="roc_auc", p=CHAMPION_P) -> TrainResult:
    """The decision filled into the result, as `train` does."""
    done = promote.promote_if_better(
        settings, result.version, result.metrics[metric], FakeTest(p), Y_TEST, metric
    )
    result.promoted, result.promotion_note, result.export_path = (
        done.promoted,
        done.note,
        done.export_path,
    )
    return result


def test_the_first_model_becomes_champion(settings, monkeypatch):
    reg = Registry(monkeypatch, champion=None)
    r = _decide(settings, _result({"roc_auc": 0.6}))
    assert r.promoted and r.promotion_note == "no champion yet"
    assert reg.promoted == [("2", True)] and r.export_path == Path("/exports/champion")


def test_a_refused_version_is_not_promoted_and_the_note_says_why(settings, monkeypatch):
    why = "version 2 reads field 'budget' the champion's callers do not send"
    reg = Registry(monkeypatch, champion="1", refusal=why)
    r = _decide(settings, _result({"roc_auc": 0.99}))
    assert not r.promoted and r.promotion_note == why
    assert reg.promoted == [] and r.export_path is None


@pytest.mark.parametrize(
    ("mine", "promoted"), [(CHAMPION_AUC - 0.01, False), (CHAMPION_AUC, True), (0.9, True)]
)
def test_by_auc_an_equal_or_better_challenger_wins_a_worse_one_does_not(
    settings, monkeypatch, mine, promoted
):
    reg = Registry(monkeypatch, champion="1")
    r = _decide(settings, _result({"roc_auc": mine}))
    assert r.promoted is promoted and bool(reg.promoted) is promoted
    assert r.promotion_note == (
        f"roc_auc {mine:.4f} vs champion v1 {CHAMPION_AUC:.4f} on the same test leads"
    )


@pytest.mark.parametrize(
    ("mine", "promoted"), [(CHAMPION_LOG_LOSS + 0.01, False), (CHAMPION_LOG_LOSS - 0.01, True)]
)
def test_by_log_loss_lower_is_better(settings, monkeypatch, mine, promoted):
    Registry(monkeypatch, champion="1")
    r = _decide(settings, _result({"log_loss": mine}), metric="log_loss")
    assert r.promoted is promoted
    assert f"vs champion v1 {CHAMPION_LOG_LOSS:.4f}" in r.promotion_note


def _cannot_load(settings, uri):
    raise ModelError(f"{uri}: no such model")


def _other_kind(settings, uri):
    raise KeyError("web_visits")


@pytest.mark.parametrize(
    ("load", "p"), [(_cannot_load, CHAMPION_P), (_other_kind, CHAMPION_P), (None, None)]
)
def test_a_champion_that_cannot_score_the_new_test_leads_leaves_it_to_a_person(
    settings, monkeypatch, load, p
):
    reg = Registry(monkeypatch, champion="1", load=load)
    r = _decide(settings, _result({"roc_auc": 0.99}), p=p)
    assert not r.promoted and reg.promoted == []
    assert r.promotion_note == (
        "champion v1 cannot score this data; promote by hand with `leadml promote --version 2`"
    )


def test_a_bug_while_scoring_with_the_champion_is_not_taken_for_a_refusal(settings, monkeypatch):
    def broken(settings, uri):
        raise RuntimeError("a bug")

    Registry(monkeypatch, champion="1", load=broken)
    with pytest.raises(RuntimeError, match="a bug"):
        _decide(settings, _result({"roc_auc": 0.99}))


def test_the_champion_is_loaded_by_its_version(settings, monkeypatch):
    seen = []
    Registry(monkeypatch, champion="4", load=lambda settings, uri: seen.append(uri))
    assert promote.champion_metric(settings, "4", FakeTest(CHAMPION_P), Y_TEST, "roc_auc") == (
        pytest.approx(CHAMPION_AUC)
    )
    assert seen == [f"models:/{settings.model_name}/4"]


# ---- the leakage guard's findings ---------------------------------------------------------


def test_a_leak_finding_is_a_warning_that_keeps_column_and_auc():
    w = LeakFinding("Sales stage", 0.9871)
    assert isinstance(w, str) and (w.column, w.auc) == ("Sales stage", 0.9871)
    assert w.startswith(
        "leakage guard: column 'Sales stage' alone predicts the outcome with AUC 0.987"
    )
    assert "--drop" in w


def test_leak_warnings_name_the_column_that_gives_the_outcome_away():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(float)
    X = pd.DataFrame({"stage": y * 3 + rng.random(400), "visits": rng.poisson(4, 400)})
    spec = FeatureSpec("flat", "row_id", ["stage", "visits"], [], {}, {"stage": "Sales stage"})
    found = evaluate.leak_warnings(X, y, spec.labels, TrainConfig().leakage_auc)
    assert [w.column for w in found] == ["Sales stage"] and found[0].auc == pytest.approx(1.0)


def test_only_real_findings_count_not_text_that_looks_like_one():
    finding = LeakFinding("stage", 0.99)
    lookalike = str(LeakFinding("notes", 0.98))  # the same words, but no finding
    warnings = ["truth file skipped", finding, lookalike]
    assert promote.version_tags(warnings) == {
        "leadml.leakage": "column 'stage' alone predicts the outcome with AUC 0.990"
    }


def test_version_tags_are_empty_without_findings_and_cut_at_1000_characters():
    assert promote.version_tags(["a plain warning"]) == {}
    many = [LeakFinding(f"column number {i}", 0.99) for i in range(40)]
    tag = promote.version_tags(many)["leadml.leakage"]
    assert len(tag) == 1000 and tag.startswith("column 'column number 0'")


def test_auc_guard_passes_a_better_or_equal_challenger_and_refuses_a_clearly_worse_one():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2000)
    good = y + rng.normal(0, 0.6, len(y))
    noise = rng.normal(0, 1, len(y))
    ok, note = promote.auc_guard(y, good, good, tolerance=0.02)
    assert ok and "+0.0000" in note and "within" in note
    ok, note = promote.auc_guard(y, noise, good, tolerance=0.02)
    assert not ok and "worse beyond the tolerance 0.020" in note
    # a small loss inside a wide tolerance passes, outside a zero tolerance does not
    slightly = good + rng.normal(0, 0.15, len(y))
    assert promote.auc_guard(y, slightly, good, tolerance=0.05)[0]
    assert not promote.auc_guard(y, slightly, good, tolerance=0.0)[0]
