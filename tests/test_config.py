"""Config files: errors name the file, the key and what is expected."""

from __future__ import annotations

import pytest

from leadml.config import Settings, TrainConfig
from leadml.errors import ConfigError


def test_defaults_without_a_file():
    cfg = TrainConfig.from_yaml(None)
    assert cfg.label.horizon_days == 30 and cfg.bands.policy == "fixed"


def test_yaml_overrides_are_applied(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "features:\n  half_life_days: 7\nbands:\n  policy: rate\n  sql: 0.6\n  mql: 0.25\n"
    )
    cfg = TrainConfig.from_yaml(path)
    assert cfg.features.half_life_days == 7 and cfg.bands.sql == 0.6


def test_unknown_key_and_bad_value_are_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("features:\n  half_life: 7\nmodel:\n  learning_rate: fast\n")
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_yaml(path)
    msg = str(err.value)
    assert str(path) in msg and "features.half_life" in msg and "model.learning_rate" in msg


def test_invalid_yaml_and_missing_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("features: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TrainConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="not found"):
        TrainConfig.from_yaml(tmp_path / "nope.yaml")


def test_split_must_leave_training_rows(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("split:\n  valid: 0.3\n  calibration: 0.3\n  test: 0.3\n")
    with pytest.raises(ConfigError, match="20 %"):
        TrainConfig.from_yaml(path)


def test_settings_default_to_an_embedded_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    s = Settings.from_env(tmp_path)
    assert s.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    assert s.export_dir == tmp_path.resolve() / "models"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert Settings.from_env(tmp_path).tracking_uri == "http://mlflow.example:5000"


def test_store_settings_default_off_and_bad_values(tmp_path):
    from leadml.config import Environment, StoreSettings
    from leadml.errors import ConfigError

    def read(**env):
        return StoreSettings.from_env(tmp_path, Environment.model_validate(env))

    assert read().store_url == f"sqlite:///{tmp_path / 'store.db'}"  # nothing to start
    assert read(LEADML_STORE_URL="off").store_url is None
    assert read(
        LEADML_WEBHOOK_URLS=" http://a/x ,, http://b/y", LEADML_WEBHOOK_SECRET="s"
    ).webhook_urls == (
        "http://a/x",
        "http://b/y",
    )
    with pytest.raises(ConfigError, match="LEADML_STORE_RETENTION_DAYS='0'"):
        read(LEADML_STORE_RETENTION_DAYS="0")
    with pytest.raises(ConfigError, match="LEADML_WEBHOOK_SECRET"):
        read(LEADML_WEBHOOK_URLS="http://a/x")
