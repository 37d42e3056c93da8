"""The one MLflow module (`leadml.tracking`) on a throw-away sqlite store: aliases, one
registered model per data source, runs of dead trainings, and a store that does not answer.

Registry versions are made with MlflowClient directly (no training), so each test is small;
the store is made once per module and every test uses its own model name."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from leadml import tracking
from leadml.config import Settings
from leadml.errors import ConfigError, PromotionError


def _settings(home: Path, tracking_uri: str) -> Settings:
    return Settings(
        home=home,
        tracking_uri=tracking_uri,
        artifact_root=(home / "mlruns" / "artifacts").as_uri(),
        export_dir=home / "models",
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Settings:
    home = tmp_path_factory.mktemp("tracking")
    return _settings(home, f"sqlite:///{home / 'mlruns' / 'mlflow.db'}")


def _versions(settings: Settings, n: int) -> list[str]:
    """`n` registry versions of `settings.model_name` (their source is a dummy folder)."""
    client = tracking.client(settings)
    client.create_registered_model(settings.model_name)
    source = (settings.home / "dummy").as_uri()
    return [str(client.create_model_version(settings.model_name, source).version) for _ in range(n)]


def test_connect_makes_the_sqlite_store_and_the_experiment_once(tmp_path):
    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'deep' / 'mlruns' / 'mlflow.db'}")
    assert not settings.store_exists()
    first = tracking.connect(settings)
    assert settings.store_exists()
    assert tracking.connect(settings) == first  # found, not made again
    assert mlflow.get_experiment(first).name == "leadml"


def test_an_alias_set_is_read_back_and_a_missing_one_is_none(store):
    settings = store.for_model("aliases")
    assert tracking.alias_version(settings, tracking.CHAMPION) is None  # no such model yet
    v1, v2 = _versions(settings, 2)
    tracking.set_alias(settings, tracking.CHALLENGER, v2)
    assert tracking.alias_version(settings, tracking.CHALLENGER) == v2
    assert tracking.alias_version(settings, tracking.CHAMPION) is None
    tracking.set_alias(settings, tracking.CHALLENGER, v1)  # an alias moves
    assert tracking.alias_version(settings, tracking.CHALLENGER) == v1


def test_each_data_source_has_its_own_registered_model_and_aliases(store):
    demo, xedu = store.for_model("demo_source"), store.for_model("xedu_source")
    (d1,) = _versions(demo, 1)
    x1, x2 = _versions(xedu, 2)
    tracking.set_alias(demo, tracking.CHAMPION, d1)
    tracking.set_alias(xedu, tracking.CHAMPION, x2)
    assert tracking.alias_version(demo, tracking.CHAMPION) == d1 == "1"
    assert tracking.alias_version(xedu, tracking.CHAMPION) == x2 == "2"
    assert tracking.version_info(xedu, x1)["name"] == "xedu_source"


def test_a_models_uri_resolves_to_its_version_or_says_what_to_do(store):
    settings = store.for_model("resolve")
    _, v2 = _versions(settings, 2)
    tracking.set_alias(settings, tracking.CHAMPION, v2)
    assert tracking.resolve_version(settings, "models:/resolve@champion") == v2
    assert tracking.resolve_version(settings, "models:/resolve/1") == "1"
    assert tracking.resolve_version(settings, "/srv/models/champion") == "/srv/models/champion"
    with pytest.raises(LookupError, match="no such model or alias.*leadml train"):
        tracking.resolve_version(settings, "models:/resolve@nobody")


def test_promoting_a_version_that_does_not_exist_names_the_challenger(store):
    settings = store.for_model("promote_unknown")
    (v1,) = _versions(settings, 1)
    tracking.set_alias(settings, tracking.CHALLENGER, v1)
    assert tracking.registered_version(settings, v1) == v1
    with pytest.raises(PromotionError, match="no version '9'.*the challenger is v1"):
        tracking.registered_version(settings, "9")


def test_a_version_the_leakage_guard_flagged_is_refused_with_the_fix(store):
    settings = store.for_model("leaky")
    (v1,) = _versions(settings, 1)
    client = tracking.client(settings)
    client.set_model_version_tag("leaky", v1, tracking.LEAKAGE_TAG, "'stage' gives the outcome")
    why = tracking.refusal(settings, v1)
    assert why is not None and "'stage' gives the outcome" in why and "--drop" in why
    assert "leadml promote --name leaky --version 1 --force" in why
    with pytest.raises(PromotionError, match="not promoted"):
        tracking.promote(settings, v1)
    assert tracking.alias_version(settings, tracking.CHAMPION) is None  # nothing moved


def test_runs_of_dead_trainings_on_this_host_end_as_killed_and_live_ones_stay(store):
    experiment = tracking.connect(store)
    client = tracking.client(store)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    mine = tracking._process_tags()
    dead = client.create_run(experiment, tags=mine | {tracking.PID_TAG: gone.stdout.strip()})
    alive = client.create_run(experiment, tags=mine)
    other_host = client.create_run(
        experiment, tags=mine | {tracking.HOST_TAG: "elsewhere", tracking.PID_TAG: "1"}
    )
    ended = tracking.end_dead_runs(store)
    assert dead.info.run_id in ended and alive.info.run_id not in ended
    assert client.get_run(dead.info.run_id).info.status == "KILLED"
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"
    assert client.get_run(other_host.info.run_id).info.status == "RUNNING"


def test_without_a_store_reconcile_leaves_everything_alone(tmp_path):
    db = tmp_path / "mlruns" / "mlflow.db"
    settings = _settings(tmp_path, f"sqlite:///{db}")
    assert tracking.reconcile(settings) == []
    assert not db.exists()  # an export-only deployment gets no store made for it


def test_an_unreachable_tracking_server_is_logged_once_and_readers_go_on(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings = _settings(tmp_path, "http://127.0.0.1:9")  # discard port: nothing answers
    assert settings.store_exists()  # a server is assumed to be there
    with pytest.raises(ConfigError, match=r"http://127.0.0.1:9: nothing answers there"):
        tracking.reconcile(settings)  # a command says it in one line
    tracking._last_failure.clear()
    with caplog.at_level(logging.WARNING, logger="leadml.tracking"):
        tracking.try_reconcile(settings)
        tracking.try_reconcile(settings)  # the service polls: the same failure is said once
    said = [r.getMessage() for r in caplog.records if r.name == "leadml.tracking"]
    assert len(said) == 1 and said[0].startswith("could not check the export")


def test_run_parameters_are_flat_and_short():
    flat = tracking._flatten({"model": {"lr": 0.05, "monotone": True}, "note": "x" * 600})
    assert flat == {"model.lr": "0.05", "model.monotone": "True", "note": "x" * 500}
