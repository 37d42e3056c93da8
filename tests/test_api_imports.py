"""The service does not import training code: a worker loads what scoring needs only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

TRAINING = [
    "leadml.train",
    "leadml.boosting",
    "leadml.dask_engine",
    "leadml.dask_crm",
    "leadml.dask_flat",
    "leadml.dask_boost",
    "leadml.synth",
    "leadml.ledger",
    "leadml.evaluate",
    "leadml.rules",
    "leadml.explore",
    "leadml.score",
    "leadml.progress",
    "sklearn.compose",  # boosting's baseline pipeline
    "sklearn.pipeline",
    "dask",
    "distributed",
    "matplotlib",
    "tqdm",
]
SERVE = textwrap.dedent(
    """
    import json, sys
    from fastapi.testclient import TestClient
    from leadml.api import create_app
    from leadml.config import ServeSettings

    app = create_app(serve=ServeSettings(model_uri=sys.argv[1], reload_seconds=0))
    lead = json.loads(sys.argv[2])
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/openapi.json").status_code == 200
        if lead is None:
            assert c.get("/ready").status_code == 503  # no model there: still up
        else:
            r = c.post("/predict?grade_reasons=true", json=lead)
            assert r.status_code == 200 and r.json()["predictions"][0]["fit_reasons"], r.text
            assert c.get("/model").json()["grades"]["meaning"]
    print(json.dumps(sorted(sys.modules)))
    """
)


def served_modules(tmp_path, model_uri: str, lead: dict | None) -> set[str]:
    env = {**os.environ, "LEADML_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", SERVE, model_uri, json.dumps(lead)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_the_service_does_not_import_training_code(tmp_path):
    loaded = served_modules(tmp_path, str(tmp_path / "no-model"), None)
    assert "leadml.api" in loaded and "leadml.features" in loaded
    assert sorted(loaded & set(TRAINING)) == []


@pytest.mark.slow
def test_scoring_with_grades_and_their_reasons_imports_no_training_code(
    tmp_path, crm_model, crm_records
):
    loaded = served_modules(tmp_path, crm_model.uri, crm_records[0])
    assert "leadml.grades" in loaded and "leadml.reasons" in loaded
    assert sorted(loaded & set(TRAINING)) == []
