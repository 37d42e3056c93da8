"""The service's settings: every environment variable is read once, by config.Environment,
with the names and defaults serve/server.env documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leadml.api import create_app
from leadml.config import Environment, ServeSettings, Settings
from leadml.errors import ConfigError

SERVE = Path(__file__).resolve().parents[1] / "serve"


def test_create_app_reads_the_service_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LEADML_HOME", str(tmp_path))
    monkeypatch.setenv("LEADML_MAX_BATCH", "50")
    monkeypatch.setenv("LEADML_API_KEY", "")  # empty: no key, as before
    monkeypatch.setenv("LEADML_RELOAD_TOKEN", str(tmp_path / "token"))
    app = create_app()
    serve, settings = app.state.serve, app.state.settings
    assert serve.max_batch == 50 and serve.api_key is None and serve.reload_seconds == 30
    assert serve.reload_token == str(tmp_path / "token")
    assert settings.home == tmp_path.resolve() and settings.model_name == "leadml"


def test_a_bad_setting_names_its_variable(monkeypatch):
    monkeypatch.setenv("LEADML_MAX_BODY_MB", "-1")
    monkeypatch.setenv("LEADML_WORKERS", "many")
    with pytest.raises(ConfigError) as caught:
        ServeSettings.from_env()
    assert "LEADML_MAX_BODY_MB" in str(caught.value) and "LEADML_WORKERS" in str(caught.value)


def test_settings_given_are_not_overridden_by_the_environment(monkeypatch):
    monkeypatch.setenv("LEADML_API_KEY", "from-env")
    assert ServeSettings(reload_seconds=0).api_key is None


def test_the_documented_defaults_are_the_defaults():
    """serve/server.env lists every service setting with its default."""
    documented = dict(
        re.findall(r"^(LEADML_\w+)=(.*)$", (SERVE / "server.env").read_text(), re.MULTILINE)
    )
    defaults = ServeSettings()
    assert float(documented["LEADML_RELOAD_SECONDS"]) == defaults.reload_seconds
    assert int(documented["LEADML_MAX_BATCH"]) == defaults.max_batch
    assert float(documented["LEADML_MAX_BODY_MB"]) == defaults.max_body_mb
    assert int(documented["LEADML_WORKERS"]) == defaults.workers
    assert documented["LEADML_MODEL_URI"] == f"models:/{Settings.from_env().model_name}@champion"
    declared = {f.validation_alias for f in Environment.model_fields.values()}
    assert set(documented) <= declared


def test_no_module_reads_the_environment_but_config():
    src = Path(__file__).resolve().parents[1] / "src" / "leadml"
    readers = {
        p.name
        for p in src.glob("*.py")
        if re.search(r"os\.environ\.get|os\.getenv|environ\[", p.read_text())
    }
    # cli.py still sets and reads a few for the serve workers: its owner moves them
    assert readers <= {"cli.py"}
