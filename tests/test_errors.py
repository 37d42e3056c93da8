"""The error family: one base the CLI catches and the service maps, each with its status."""

from __future__ import annotations

import pytest

from leadml import errors
from leadml.cli import one_line

FAMILY = [
    errors.ContractError,
    errors.ConfigError,
    errors.RulesError,
    errors.EngineError,
    errors.ModelError,
    errors.PromotionError,
]


@pytest.mark.parametrize("kind", FAMILY)
def test_every_user_error_is_a_leadml_error_with_a_4xx_or_503_status(kind):
    exc = kind("x.csv: column 'won' is missing")
    assert isinstance(exc, errors.LeadmlError)
    assert kind.status in {400, 409, 422, 503}
    assert str(exc) == "x.csv: column 'won' is missing"


def test_statuses_say_whose_fault():
    assert errors.ContractError.status == 422  # the input breaks the contract
    assert errors.PromotionError.status == 409  # conflicts with the registry's state
    assert errors.ModelError.status == 503  # the service has no model to answer with


def test_one_line_joins_a_long_message():
    exc = errors.ConfigError("c.yaml: invalid config\n  model.foo: Extra inputs\n\n  bands.sql: >0")
    assert one_line(exc) == "c.yaml: invalid config; model.foo: Extra inputs; bands.sql: >0"


def test_one_line_names_the_file_of_a_file_error(tmp_path):
    with pytest.raises(OSError) as info:
        (tmp_path / "nope" / "x.csv").read_text()
    assert one_line(info.value) == f"{tmp_path / 'nope' / 'x.csv'}: No such file or directory"
