"""contract.py: the CRM input contract, declared once and read by the file checks, the
service's request model and the README."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from leadml import contract, dataset, engagement
from leadml.errors import ContractError
from leadml.features import FeatureSpec
from leadml.schemas import RequestModel

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_table_is_the_contract():
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- contract:")
    block = text[text.index("\n", start) + 1 : text.index("<!-- /contract -->")]
    assert block == contract.markdown()


def test_the_request_model_of_a_crm_model_speaks_the_contract():
    spec = FeatureSpec("crm", "lead_id", [], [], {}, {}, observation_days=90)
    fields = RequestModel.from_spec(spec).lead_type.model_fields
    leads = contract.names("leads", "key", "profile")
    assert [f for f in fields if f not in ("events", "as_of")] == leads
    for name in leads:
        assert fields[name].description == contract.describe("leads", name)


def test_every_event_type_is_counted_by_the_feature_function():
    counted = {k.removesuffix("_view") if k.endswith("_view") else k for k in engagement.KINDS}
    assert set(contract.EVENT_TYPES) - {"page_view"} <= counted
    assert set(contract.PAGE_KINDS) <= counted


def _copy(crm_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "crm"
    shutil.copytree(crm_dir, folder)
    return folder


@pytest.mark.parametrize(
    ("table", "column"),
    [("leads", c) for c in contract.LEAD_COLUMNS + contract.OUTCOME_COLUMNS]
    + [("events", c) for c in contract.EVENT_COLUMNS],
)
def test_each_required_column_is_checked_by_name(crm_dir, tmp_path, table, column):
    folder = _copy(crm_dir, tmp_path)
    frame = pd.read_csv(folder / f"{table}.csv", dtype=str)
    frame.drop(columns=[column]).to_csv(folder / f"{table}.csv", index=False)
    with pytest.raises(ContractError, match=f"'{column}'"):
        dataset.load(folder)


@pytest.mark.parametrize("column", contract.PROFILE_COLUMNS + ["page"])
def test_optional_columns_may_be_left_out(crm_dir, tmp_path, column):
    folder = _copy(crm_dir, tmp_path)
    table = "events" if column == "page" else "leads"
    frame = pd.read_csv(folder / f"{table}.csv", dtype=str)
    frame.drop(columns=[column]).to_csv(folder / f"{table}.csv", index=False)
    data = dataset.load(folder)
    assert len(data.leads) > 0 and column in (data.events if table == "events" else data.leads)
