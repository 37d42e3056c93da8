"""Fuzzing the service against its own OpenAPI schema (schemathesis): no input gives a 500.

Both kinds of model are fuzzed, because the request schema is made from the loaded model:
CRM leads with nested events, and a flat export's columns (numbers, yes/no, categories).
Each operation gets schema-valid and schema-breaking cases (schemathesis's positive and
negative generation modes); every answer must be a documented status with a body matching
the documented schema, and never a 500.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from leadml.api import create_app
from leadml.config import ServeSettings, Settings

pytestmark = pytest.mark.slow
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = {"/predict": 120, "/predict/batch": 60}  # the bodies worth fuzzing; others get 15


def _operations(model, home):
    # the model's own export is the source: /admin/reload reloads it (200), wherever this runs
    serve = ServeSettings(reload_seconds=0, max_batch=50, model_uri=model.uri)
    app = create_app(Settings.from_env(home), serve, model=model)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("kind", ["crm", "flat"])
def test_no_input_gives_a_server_error(kind, crm_model, flat_model, home):
    operations = _operations(crm_model if kind == "crm" else flat_model, home)
    assert {op.path for op in operations} >= {
        "/predict",
        "/predict/batch",
        "/model",
        "/admin/reload",
        "/ready",
    }
    for op in operations:
        for mode in ("positive", "negative"):
            strategy = op.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

            @settings(
                max_examples=EXAMPLES.get(op.path, 15),
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def fuzz(case):
                case.call_and_validate(checks=CHECKS)

            try:
                fuzz()
            except Unsatisfiable:
                assert mode == "negative"  # nothing to break in an operation without inputs
