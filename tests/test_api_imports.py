"""The service does not import training code: a worker loads what scoring needs only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

TRAINING = [
    "leadml.train",
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
    "dask",
    "distributed",
    "matplotlib",
    "tqdm",
]


def test_the_service_does_not_import_training_code(tmp_path):
    code = textwrap.dedent(
        """
        import json, sys
        from fastapi.testclient import TestClient
        from leadml.api import create_app
        from leadml.config import ServeSettings

        app = create_app(serve=ServeSettings(model_uri=sys.argv[1], reload_seconds=0))
        with TestClient(app) as c:
            assert c.get("/health").status_code == 200
            assert c.get("/ready").status_code == 503  # no model there: still up
            assert c.get("/openapi.json").status_code == 200
        print(json.dumps(sorted(sys.modules)))
        """
    )
    env = {**os.environ, "LEADML_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "no-model")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert "leadml.api" in loaded and "leadml.features" in loaded
    assert sorted(loaded & set(TRAINING)) == []
