"""score_io.py: which input a model takes, reading options, the output columns."""

from types import SimpleNamespace

import pandas as pd
import pytest

from leadml import dataset, score_io
from leadml.errors import ContractError
from leadml.grades import LABELS


def _scorer(kind: str, card: dict | None = None):  # only what the helpers look at
    return SimpleNamespace(spec=SimpleNamespace(kind=kind), card=card or {})


def test_crm_models_take_folders_and_flat_models_files(tmp_path):
    file = tmp_path / "leads.csv"
    file.write_text("x\n1\n")
    score_io.check_kind(tmp_path, _scorer("crm"))
    score_io.check_kind(file, _scorer("flat"))
    with pytest.raises(ContractError, match="trained on CRM tables"):
        score_io.check_kind(file, _scorer("crm"))
    with pytest.raises(ContractError, match="trained on a flat export"):
        score_io.check_kind(tmp_path, _scorer("flat"))


def test_flat_options_add_the_model_cards_missing_markers():
    given = dataset.ReadOptions(missing_values=("n/a",))
    got = score_io.flat_options(given, _scorer("flat", {"missing_values": ["Select"]}))
    assert got.missing_values == ("n/a", "Select")
    assert score_io.flat_options(given, _scorer("flat")).missing_values == ("n/a",)


def test_output_frame_rounds_probabilities_and_keeps_the_grades_in_order():
    grades = {"fit": "B", "engagement": "2", "grid": "B2", "temperature": None}
    frame = pd.DataFrame(
        {"id": ["x"], "probability": [0.12345678], "score": [12], "band": ["MQL"], "extra": [1]}
        | {k: [v] for k, v in grades.items()}
        | {"pql": [True], "stage": ["MoFu"]}
    )
    out = score_io.output_frame(frame, "id")
    assert out.columns.tolist() == ["id", "probability", "score", "band", *LABELS]
    assert out["probability"].tolist() == [0.123457]
    assert out.iloc[0]["grid"] == "B2" and out.iloc[0]["temperature"] is None
