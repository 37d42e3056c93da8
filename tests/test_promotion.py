"""Safe promotion: input contracts, the leakage guard, one name per data source, and a champion
whose registry alias, export and service agree after a `kill -9` at any moment."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from leadml import tracking
from leadml.api import create_app
from leadml.cli import main
from leadml.config import ServeSettings, Settings, TrainConfig
from leadml.train import train
from tests.conftest import make_flat

pytestmark = pytest.mark.slow
SMALL = {"model": {"baseline": False, "max_rounds": 50}}
WORSE = {"model": {"baseline": False, "max_rounds": 1, "num_leaves": 2}}
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="session")
def registry(tmp_path_factory, crm_dir) -> Path:
    """A home with CRM champion v1 and two worse CRM versions, v2 (challenger) and v3."""
    home = tmp_path_factory.mktemp("registry") / "home"
    with pytest.MonkeyPatch.context() as env:  # mlflow.set_tracking_uri exports the variable
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.delenv("LEADML_MODEL_NAME", raising=False)
        settings = Settings.from_env(home)
        assert train(crm_dir, TrainConfig.model_validate(SMALL), settings).promoted
        for version in ("2", "3"):
            worse = train(crm_dir, TrainConfig.model_validate(WORSE), settings)
            assert worse.version == version and not worse.promoted
        tracking.set_alias(settings, tracking.CHALLENGER, "2")
    return home


@pytest.fixture
def copied(registry, tmp_path, monkeypatch) -> Settings:
    """A private copy of `registry` as LEADML_HOME (the copy's store still reads the original's
    artefacts, which nothing here writes)."""
    home = tmp_path / "home"
    shutil.copytree(registry, home, symlinks=True)
    monkeypatch.setenv("LEADML_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LEADML_MODEL_NAME", raising=False)
    return Settings.from_env()


def _config(tmp_path: Path, changes: dict) -> Path:
    path = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.yaml"
    path.write_text(yaml.safe_dump(changes))
    return path


def _export_version(settings: Settings) -> str:
    card = json.loads((settings.export_dir / "champion" / "scorer.json").read_text())["card"]
    return card["registry"]["version"]


def _served_version(settings: Settings, model_uri: str | None) -> str:
    """/model of a freshly started service: from the export folder, or from the registry."""
    app = create_app(settings, ServeSettings(reload_seconds=0, model_uri=model_uri))
    with TestClient(app) as c:
        r = c.get("/model")
    assert r.status_code == 200, r.text
    return r.json()["version"]


def assert_one_champion(settings: Settings, allowed: set[str]) -> str:
    """Registry alias, export card and a freshly loaded service agree, and nothing is left over."""
    alias = tracking.alias_version(settings, tracking.CHAMPION)
    assert alias in allowed
    assert _export_version(settings) == alias
    assert _served_version(settings, str(settings.export_dir / "champion")) == alias
    assert _served_version(settings, None) == alias
    export = settings.export_dir / "champion"
    kept = {"champion", ".lock"} | ({os.readlink(export)} if export.is_symlink() else set())
    assert set(os.listdir(settings.export_dir)) <= kept
    return alias


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# ---- input contract ----------------------------------------------------------------------


def test_promote_refuses_a_flat_model_over_a_crm_champion_unless_forced(
    copied, flat_csv, tmp_path, capsys
):
    flat = {**SMALL, "flat": {"target": "won", "id_column": "customer_ref", "sep": ";"}}
    v4 = train(flat_csv, TrainConfig.model_validate(flat), copied)
    assert v4.version == "4" and not v4.promoted
    capsys.readouterr()  # MLflow's own chatter while registering
    assert main(["-q", "promote"]) == 2  # the challenger, v4
    err = _one_line_error(capsys)
    assert "rows of a flat export" in err and "CRM leads" in err
    assert "--name" in err and "--force" in err
    assert tracking.alias_version(copied, tracking.CHAMPION) == "1" == _export_version(copied)
    assert main(["-q", "promote", "--force"]) == 0
    assert assert_one_champion(copied, {"4"}) == "4"


def test_train_does_not_promote_a_model_that_reads_a_new_field(home, tmp_path, capsys):
    """Callers of the champion do not send the new field: the challenger waits for a person,
    even when it is better. A model that reads fewer fields is promoted as usual."""
    data = tmp_path / "export.csv"
    make_flat(1500, seed=3).to_csv(data, sep=";", index=False)
    args = [
        "-q",
        "train",
        "--data",
        str(data),
        "--sep",
        ";",
        "--target",
        "won",
        "--id",
        "customer_ref",
    ]
    small, worse = _config(tmp_path, SMALL), _config(tmp_path, WORSE)
    assert main([*args, "--drop", "owner_notes,newsletter", "--config", str(worse)]) == 0
    assert main([*args, "--drop", "owner_notes", "--config", str(small)]) == 0
    out = capsys.readouterr().out
    assert "registered leadml v2 as challenger; not promoted" in out
    assert "'newsletter'" in out and "--force" in out
    settings = Settings.from_env()
    assert tracking.alias_version(settings, tracking.CHAMPION) == "1" == _export_version(settings)
    assert main(["-q", "promote"]) == 2
    assert "'newsletter'" in _one_line_error(capsys)
    fewer = "owner_notes,newsletter,sales_region"
    assert main([*args, "--drop", fewer, "--config", str(small)]) == 0
    assert "v3 as challenger; promoted to champion" in capsys.readouterr().out
    assert _export_version(settings) == "3"


def test_promoting_a_version_that_does_not_exist_is_one_line(copied, capsys):
    assert main(["-q", "promote", "--version", "9"]) == 2
    err = _one_line_error(capsys)
    assert "no version '9'" in err and "challenger is v2" in err
    assert main(["-q", "promote", "--version", "two"]) == 2
    _one_line_error(capsys)
    assert tracking.alias_version(copied, tracking.CHAMPION) == "1" == _export_version(copied)


# ---- leakage -----------------------------------------------------------------------------


def test_a_leaky_model_is_registered_with_the_reason_and_promoted_only_by_force(
    home, tmp_path, capsys
):
    frame = make_flat(1500, seed=4)
    rng = np.random.default_rng(0)
    frame["stage"] = np.where(
        frame["won"] == "yes", "closed", rng.choice(["open", "nurture"], len(frame))
    )
    data = tmp_path / "leaky.csv"
    frame.drop(columns=["owner_notes"]).to_csv(data, sep=";", index=False)
    args = [
        "-q",
        "train",
        "--data",
        str(data),
        "--sep",
        ";",
        "--target",
        "won",
        "--id",
        "customer_ref",
    ]
    assert main([*args, "--config", str(_config(tmp_path, SMALL))]) == 0
    out = capsys.readouterr().out
    assert "registered leadml v1 as challenger; not promoted" in out  # even with no champion
    assert "leakage guard" in out and "'stage'" in out and "--force" in out
    settings = Settings.from_env()
    version = tracking.client(settings).get_model_version("leadml", "1")
    assert "'stage'" in version.tags["leadml.leakage"] and "AUC" in version.tags["leadml.leakage"]
    assert tracking.alias_version(settings, tracking.CHAMPION) is None
    assert not (settings.export_dir / "champion").exists()
    assert main(["-q", "promote"]) == 2
    err = _one_line_error(capsys)
    assert "leakage guard" in err and "'stage'" in err and "--force" in err
    assert main(["-q", "promote", "--force"]) == 0
    assert tracking.alias_version(settings, tracking.CHAMPION) == "1" == _export_version(settings)


# ---- one name per data source ------------------------------------------------------------


def test_each_name_has_its_own_champion_export_and_service(copied, flat_csv, tmp_path, capsys):
    flat = ["--data", str(flat_csv), "--sep", ";", "--target", "won", "--id", "customer_ref"]
    config = str(_config(tmp_path, SMALL))
    assert main(["-q", "train", "--name", "xport", *flat, "--config", config]) == 0
    assert "registered xport v1 as challenger; promoted to champion" in capsys.readouterr().out
    xport = copied.for_model("xport")
    card = json.loads((copied.export_dir / "xport" / "champion" / "scorer.json").read_text())
    assert (card["card"]["registry"]["name"], card["card"]["registry"]["version"]) == ("xport", "1")
    assert _export_version(copied) == "1" == tracking.alias_version(copied, tracking.CHAMPION)
    out = tmp_path / "scores.csv"
    score = ["-q", "score", "--name", "xport", "--data", str(flat_csv), "--sep", ";", "--out"]
    assert main([*score, str(out)]) == 0
    assert "customer_ref" in out.read_text().splitlines()[0]
    for uri in (None, str(copied.export_dir / "xport" / "champion")):
        app = create_app(xport, ServeSettings(reload_seconds=0, model_uri=uri))
        with TestClient(app) as c:
            body = c.get("/model").json()
        assert (body["name"], body["version"], body["kind"]) == ("xport", "1", "flat")
    assert main(["-q", "promote", "--name", "../x"]) == 2
    assert "letters, digits" in _one_line_error(capsys)


# ---- crash safety ------------------------------------------------------------------------

KILL_AT = {
    # while the new export is being copied
    "copy": """
        real = shutil.copytree
        def patched(src, dst, *a, **k):
            if under_models(dst):
                die()
            return real(src, dst, *a, **k)
        shutil.copytree = patched
    """,
    # when the champion alias is about to move
    "alias": """
        real = mlflow.MlflowClient.set_registered_model_alias
        def patched(self, name, alias, version):
            if alias == "champion":
                die()
            return real(self, name, alias, version)
        mlflow.MlflowClient.set_registered_model_alias = patched
    """,
    # when models/champion is about to be renamed (replaced by the new export)
    "rename": """
        real = os.replace
        def patched(src, dst, *a, **k):
            if "champion" in (Path(src).name, Path(dst).name):
                die()
            return real(src, dst, *a, **k)
        os.replace = patched
    """,
    # when the previous export is about to be removed
    "cleanup": """
        real = shutil.rmtree
        def patched(path, *a, **k):
            if under_models(path):
                die()
            return real(path, *a, **k)
        shutil.rmtree = patched
    """,
}


def _script(patch: str) -> str:
    """A `leadml` command line with one step patched (to kill or pause the process there)."""
    head = """
        import os, shutil, signal, sys
        from pathlib import Path
        import mlflow
        MODELS = (Path(os.environ["LEADML_HOME"]) / "models").resolve()
        def under_models(p):
            return Path(os.path.abspath(p)).is_relative_to(MODELS)
        def die(*a, **k):
            os.kill(os.getpid(), signal.SIGKILL)
    """
    tail = """
        from leadml.cli import main
        sys.exit(main(sys.argv[1:]))
    """
    return textwrap.dedent(head) + textwrap.dedent(patch) + textwrap.dedent(tail)


def _env(home: Path) -> dict:
    env = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LEADML_MODEL_NAME")
    }
    return {**env, "LEADML_HOME": str(home), "PYTHONPATH": str(SRC)}


def run_patched(patch: str, args: list[str], home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _script(patch), "-q", *args],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_patched(patch: str, args: list[str], home: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _script(patch), "-q", *args],
        env=_env(home),
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("step", "then"),
    [("copy", "score"), ("alias", "promote"), ("rename", "serve"), ("cleanup", "promote v3")],
)
def test_a_promotion_killed_at_any_step_leaves_one_champion(copied, crm_dir, step, then):
    killed = run_patched(KILL_AT[step], ["promote"], copied.home)  # v2, the challenger
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if then == "score":
        out = copied.home / "out" / "scores.csv"
        assert main(["-q", "score", "--data", str(crm_dir), "--out", str(out)]) == 0
    elif then == "promote":
        assert main(["-q", "promote"]) == 0
    elif then == "promote v3":
        assert main(["-q", "promote", "--version", "3"]) == 0
    else:  # the service, started on the export folder
        _served_version(copied, str(copied.export_dir / "champion"))
    expected = {"score": {"1", "2"}, "promote": {"2"}, "serve": {"1", "2"}, "promote v3": {"3"}}
    assert_one_champion(copied, expected[then])


def test_a_leftover_champion_old_does_not_break_the_next_promote(copied):
    old = copied.export_dir / "champion.old"  # what a promote killed by an earlier leadml left
    old.mkdir()
    (old / "scorer.json").write_text("{}")
    assert main(["-q", "promote"]) == 0
    assert assert_one_champion(copied, {"2"}) == "2"


def test_an_export_from_before_version_folders_is_replaced(copied):
    export = copied.export_dir / "champion"
    if export.is_symlink():  # make it a plain folder, as earlier leadml versions wrote it
        target = export.resolve()
        export.unlink()
        shutil.copytree(target, export)
        shutil.rmtree(target)
    assert main(["-q", "promote"]) == 0
    assert export.is_symlink() and assert_one_champion(copied, {"2"}) == "2"


def test_an_export_only_deployment_is_left_alone(copied, crm_dir, tmp_path, monkeypatch):
    """No tracking store next to the export (a container with models/ mounted): scoring reads
    the export and creates no store."""
    home = tmp_path / "deployed"
    shutil.copytree(copied.export_dir, home / "models", symlinks=True)
    monkeypatch.setenv("LEADML_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = home / "scores.csv"
    assert main(["-q", "score", "--data", str(crm_dir), "--out", str(out)]) == 0
    assert out.exists() and not (home / "mlruns").exists()


def test_two_promotions_at_once_end_with_one_champion(copied, tmp_path):
    """A promotion paused right after moving the alias; another one starts meanwhile. Whichever
    finishes last, the alias and the export agree."""
    paused, go, waiting = tmp_path / "paused", tmp_path / "go", tmp_path / "waiting"
    pause = f"""
        import time
        real = mlflow.MlflowClient.set_registered_model_alias
        def patched(self, name, alias, version):
            real(self, name, alias, version)
            if alias == "champion":
                Path({str(paused)!r}).touch()
                while not Path({str(go)!r}).exists():
                    time.sleep(0.05)
        mlflow.MlflowClient.set_registered_model_alias = patched
    """
    note = f"""
        import fcntl
        real = fcntl.flock
        def patched(fd, op):
            Path({str(waiting)!r}).touch()
            return real(fd, op)
        fcntl.flock = patched
    """
    first = start_patched(pause, ["promote", "--version", "2"], copied.home)
    _wait_for(lambda: paused.exists() or first.poll() is not None)
    second = start_patched(note, ["promote", "--version", "3"], copied.home)
    _wait_for(lambda: waiting.exists() or second.poll() is not None)
    go.touch()
    for process in (first, second):
        assert process.wait(timeout=300) == 0, process.communicate()[1]
    assert_one_champion(copied, {"2", "3"})


def _wait_for(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


# ---- rollback ----------------------------------------------------------------------------


def test_rollback_without_a_previous_champion_is_refused_in_one_line(copied, capsys):
    assert main(["-q", "rollback"]) == 2
    assert "no previous champion" in _one_line_error(capsys)
    assert tracking.alias_version(copied, tracking.CHAMPION) == "1" == _export_version(copied)


def test_rollback_moves_alias_and_export_together_and_the_running_service_follows(copied, capsys):
    assert main(["-q", "promote", "--version", "3", "--force"]) == 0
    assert tracking.alias_version(copied, tracking.PREVIOUS) == "1"
    serve = ServeSettings(reload_seconds=0.2, model_uri=str(copied.export_dir / "champion"))
    with TestClient(create_app(copied, serve)) as c:
        assert c.get("/model").json()["version"] == "3"
        assert main(["-q", "rollback"]) == 0
        assert "v1 is champion again (was v3)" in capsys.readouterr().out
        _wait_for(lambda: c.get("/model").json()["version"] == "1", seconds=30)
        assert c.get("/model").json()["version"] == "1"  # the service's own reload, no restart
    assert assert_one_champion(copied, {"1"}) == "1"
    # a second rollback undoes the first
    assert tracking.alias_version(copied, tracking.PREVIOUS) == "3"
    assert main(["-q", "rollback"]) == 0
    assert assert_one_champion(copied, {"3"}) == "3"
    assert tracking.alias_version(copied, tracking.PREVIOUS) == "1"


# ---- runs of killed trainings ------------------------------------------------------------


def _runs(settings: Settings) -> list:
    experiment = tracking.connect(settings)
    return tracking.client(settings).search_runs([experiment])


def test_sigterm_mid_training_ends_the_run_as_killed(home, crm_dir):
    stop = """
        import time, leadml.train
        def stopped(*a, **k):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(60)
        leadml.train.fit = stopped
    """
    done = run_patched(stop, ["train", "--data", str(crm_dir)], home)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert "stopped by SIGTERM" in done.stderr and "Traceback" not in done.stderr
    (run,) = _runs(Settings.from_env())
    assert run.info.status == "KILLED"


@pytest.mark.parametrize(
    "kill",
    ["import leadml.train\nleadml.train.fit = die\n", "mlflow.log_artifacts = die\n"],
    ids=["fitting", "logging"],
)
def test_a_training_killed_by_sigkill_is_marked_killed_by_the_next_command(copied, crm_dir, kill):
    killed = run_patched(kill, ["train", "--data", str(crm_dir)], copied.home)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    out = copied.home / "out" / "scores.csv"
    assert main(["-q", "score", "--data", str(crm_dir), "--out", str(out)]) == 0
    statuses = sorted(run.info.status for run in _runs(copied))
    assert statuses == ["FINISHED", "FINISHED", "FINISHED", "KILLED"]
