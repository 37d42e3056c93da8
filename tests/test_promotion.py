"""Safe promotion: input contracts, the leakage guard, one name per data source, and a champion
whose registry alias, export and service agree after a `kill -9` at any moment."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from leadml import tracking
from leadml.api import create_app
from leadml.cli import main
from leadml.config import ServeSettings, Settings, TrainConfig
from leadml.train import train

pytestmark = pytest.mark.slow
SMALL = {"model": {"baseline": False, "max_rounds": 50}}
WORSE = {"model": {"baseline": False, "max_rounds": 1, "num_leaves": 2}}
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="session")
def registry(tmp_path_factory, crm_dir) -> Path:
    """A home with CRM champion v1 and two worse CRM versions, v2 (challenger) and v3."""
    home = tmp_path_factory.mktemp("registry") / "home"
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
