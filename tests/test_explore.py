"""Exploration helpers the notebooks call (fast; the notebooks themselves run in CI)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml import dataset, explore
from leadml.config import TrainConfig
from leadml.errors import ConfigError


def test_conversion_by_counts_rates_and_lift():
    table = pd.DataFrame({"source": ["a", "a", "b", "b", "b", None], "visits": np.arange(6.0)})
    y = np.array([1, 0, 1, 1, 0, 0])
    out = explore.conversion_by(table, y, "source").set_index("source")
    assert out.loc["a", "leads"] == 2 and out.loc["b", "conversion"] == pytest.approx(2 / 3)
    assert out.loc["(missing)", "leads"] == 1
    assert out.loc["a", "lift"] == pytest.approx(0.5 / 0.5)


def test_quality_report_names_personal_columns_and_counts_rejects(crm_dir):
    data = dataset.load_crm(crm_dir)
    columns, rejected = explore.quality_report(data)
    notes = columns.set_index("column")["note"]
    assert notes["email"].startswith("personal data") and notes["industry"] == ""
    assert list(rejected.columns) == ["table", "file", "field", "reason", "rows"]
    counts = explore.input_counts(data).set_index("table")
    assert counts.loc["leads", "read"] == 3000 == counts.loc["leads", "used"]
    assert (counts["read"] == counts["used"] + counts["rejected"]).all()


def test_config_with_changes_merges_deeply_and_checks():
    base = TrainConfig()
    changed = base.with_changes({"features": {"half_life_days": 7}})
    assert changed.features.half_life_days == 7
    assert changed.features.windows_days == base.features.windows_days
    with pytest.raises(ConfigError, match="invalid config change"):
        base.with_changes({"features": {"half_life_days": "soon"}})
