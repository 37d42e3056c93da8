"""What leadml accepts (issue 13): real-world exports lose nothing and mangle nothing.

Each test hands leadml a file the way real CRMs write them (odd ids, day-first dates,
decimal commas, other encodings, Excel, future timestamps, repeated ids) and checks that
every row is used or rejected with its reason, and that the scores are exactly those of the
same data written cleanly.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from leadml import accounting, dataset
from leadml.cli import main
from leadml.config import Settings
from leadml.dataset import ReadOptions
from leadml.errors import ContractError
from leadml.score import score_file
from tests.conftest import make_flat

pytestmark = pytest.mark.slow
AS_OF = "2026-06-15"


def _copy(crm_dir, tmp_path, name="crm"):
    out = tmp_path / name
    shutil.copytree(crm_dir, out)
    return out


def _scores(data, model, tmp_path, name, as_of=None, options=None) -> pd.DataFrame:
    out = tmp_path / f"{name}.csv"
    summary = score_file(data, out, Settings.from_env(tmp_path), model.uri, options, as_of)
    frame = pd.read_csv(out, dtype={"lead_id": str, "customer_ref": str})
    frame.attrs["summary"] = summary
    return frame


def _same_scores(a: pd.DataFrame, b: pd.DataFrame, key: str = "lead_id") -> None:
    a, b = a.set_index(key).sort_index(), b.set_index(key).sort_index()
    assert a.index.equals(b.index)
    assert np.abs(a["probability"].to_numpy() - b["probability"].to_numpy()).max() <= 1e-9
    assert (a["band"] == b["band"]).all()


# ---- 1. ids are text ----------------------------------------------------------------------


def test_one_odd_event_id_costs_exactly_that_row(crm_dir, crm_model, tmp_path):
    clean = _scores(crm_dir, crm_model, tmp_path, "clean")
    folder = _copy(crm_dir, tmp_path)
    events = pd.read_csv(folder / "events.csv", dtype=str)
    events.loc[17, "lead_id"] = "L-odd"
    events.to_csv(folder / "events.csv", index=False)
    odd = _scores(folder, crm_model, tmp_path, "odd")
    s = odd.attrs["summary"]
    assert s.tables["events"].rejected == {accounting.NO_LEAD: 1}
    assert s.tables["events"].read == len(events) and s.as_of == clean.attrs["summary"].as_of
    rejects = pd.read_csv(s.rejects_path, dtype=str)
    assert rejects[["table", "row", "lead_id"]].values.tolist() == [["events", "18", "L-odd"]]
    owner = pd.read_csv(crm_dir / "events.csv", dtype=str).loc[17, "lead_id"]
    _same_scores(clean[clean["lead_id"] != owner], odd[odd["lead_id"] != owner])


def test_leading_zeros_are_other_leads_and_are_written_back_as_read(crm_model, tmp_path):
    folder = tmp_path / "zeros"
    folder.mkdir()
    pd.DataFrame(
        {
            "lead_id": ["000123", "123", "0042"],
            "created_at": "2026-05-01 10:00:00",
            "job_title": ["VP Sales", "Student", "VP Sales"],
        }
    ).to_csv(folder / "leads.csv", index=False)
    pd.DataFrame(
        {
            "lead_id": ["000123"] * 3 + ["123"],
            "occurred_at": "2026-06-10 09:00:00",
            "event_type": ["demo_request", "trial_start", "webinar", "bounce"],
        }
    ).to_csv(folder / "events.csv", index=False)
    out = _scores(folder, crm_model, tmp_path, "zeros", AS_OF)
    raw = (tmp_path / "zeros.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in raw[1:]] == ["000123", "123", "0042"]
    by_id = out.set_index("lead_id")["probability"]
    assert by_id["000123"] != by_id["123"]  # the demo and trial belong to 000123 only
    assert out.attrs["summary"].tables["events"].rejected == {}


def test_parquet_float_ids_are_the_same_leads_as_integer_ids(crm_dir, crm_model, tmp_path):
    clean = _scores(crm_dir, crm_model, tmp_path, "clean", AS_OF)
    folder = tmp_path / "pq"
    folder.mkdir()
    leads = pd.read_csv(crm_dir / "leads.csv")
    leads["lead_id"] = leads["lead_id"].astype(float)  # as a warehouse stores an id with gaps
    leads.to_parquet(folder / "leads.parquet")
    pd.read_csv(crm_dir / "events.csv").to_parquet(folder / "events.parquet")  # int64 ids
    floats = _scores(folder, crm_model, tmp_path, "floats", AS_OF)
    assert floats.attrs["summary"].tables["events"].rejected == {}
    _same_scores(clean, floats)


# ---- 2. every table counted, with a stop --------------------------------------------------


def test_mostly_garbage_events_stop_the_run_naming_table_share_and_reason(crm_dir, home, capsys):
    folder = _copy(crm_dir, home)
    events = pd.read_csv(folder / "events.csv", dtype=str)
    events.loc[: len(events) // 10, "event_type"] = "fax_sent"  # 10 % unusable
    events.to_csv(folder / "events.csv", index=False)
    out = home / "out" / "scores.csv"
    assert main(["-q", "train", "--data", str(folder), "--no-register"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "events.csv" in err and "(10.0%, over the 5% limit)" in err
    assert "unknown event type" in err and "--max-reject-share" in err
    assert (home / "out" / "train-rejects.csv").exists()  # what was rejected is still shown
    code = main(
        ["-q", "train", "--data", str(folder), "--no-register", "--max-reject-share", "15%"]
    )
    assert code == 0
    report = capsys.readouterr().out
    assert "events" in report and "unknown event type" in report and " used " in report
    assert not out.exists()


def test_repeated_lead_ids_keep_the_first_row(crm_dir, crm_model, tmp_path):
    clean = _scores(crm_dir, crm_model, tmp_path, "clean", AS_OF)
    folder = _copy(crm_dir, tmp_path)
    leads = pd.read_csv(folder / "leads.csv", dtype=str)
    again = leads.iloc[[5, 9]].assign(job_title="Student", company_size="1-10")
    pd.concat([leads, again]).to_csv(folder / "leads.csv", index=False)
    dup = _scores(folder, crm_model, tmp_path, "dup", AS_OF)
    s = dup.attrs["summary"]
    assert s.tables["leads"].rejected == {accounting.DUPLICATE_ID: 2} and s.rows_in == 3002
    _same_scores(clean, dup)  # the first rows are the ones used


def test_counts_per_table_reach_mlflow(crm_dir, home):
    import mlflow

    from leadml.config import TrainConfig
    from leadml.train import train

    folder = _copy(crm_dir, home)
    events = pd.read_csv(folder / "events.csv", dtype=str)
    events.loc[3, "event_type"] = "fax_sent"
    events.to_csv(folder / "events.csv", index=False)
    config = TrainConfig.model_validate({"model": {"baseline": False, "max_rounds": 50}})
    result = train(folder, config, Settings.from_env())
    metrics = mlflow.get_run(result.run_id).data.metrics
    assert metrics["rows_events_read"] == len(events)
    assert metrics["rows_events_rejected"] == 1
    assert metrics["rows_events_used"] == len(events) - 1
    assert metrics["rows_leads_read"] == metrics["rows_leads_used"] == 3000


# ---- 3. dates and numbers -----------------------------------------------------------------


def _rewrite_dates(crm_dir, tmp_path, fmt: str, name: str):
    folder = _copy(crm_dir, tmp_path, name)
    for table, cols in (("leads", ["created_at", "converted_at"]), ("events", ["occurred_at"])):
        frame = pd.read_csv(folder / f"{table}.csv", dtype=str)
        for col in cols:
            stamps = pd.to_datetime(frame[col])
            frame[col] = stamps.dt.strftime(fmt).where(stamps.notna())
        frame.to_csv(folder / f"{table}.csv", index=False)
    return folder


@pytest.mark.parametrize("fmt", ["%d/%m/%Y %H:%M:%S", "%d.%m.%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S"])
def test_day_first_and_month_first_dates_score_like_iso(crm_dir, crm_model, tmp_path, fmt):
    clean = _scores(crm_dir, crm_model, tmp_path, "clean")
    folder = _rewrite_dates(crm_dir, tmp_path, fmt, "dates")
    other = _scores(folder, crm_model, tmp_path, "other")
    summary = other.attrs["summary"]
    assert summary.as_of == clean.attrs["summary"].as_of and summary.rejected == 0
    order = "month-first" if fmt.startswith("%m") else "day-first"
    assert any(f"read {order}" in note for note in summary.notes)
    _same_scores(clean, other)


def test_dates_that_could_be_either_order_need_a_date_format(crm_model, tmp_path):
    folder = tmp_path / "ambiguous"
    folder.mkdir()
    pd.DataFrame(
        {"lead_id": ["1", "2"], "created_at": ["03/04/2026 10:00", "05/06/2026 11:00"]}
    ).to_csv(folder / "leads.csv", index=False)
    pd.DataFrame(
        {"lead_id": ["1"], "occurred_at": ["2026-06-07 10:00"], "event_type": ["webinar"]}
    ).to_csv(folder / "events.csv", index=False)
    with pytest.raises(ContractError, match="could be day-first or month-first.*--date-format"):
        _scores(folder, crm_model, tmp_path, "a", AS_OF)
    day = dataset.load_crm(folder, ReadOptions(date_format="day-first"), require_outcome=False)
    month = dataset.load_crm(folder, ReadOptions(date_format="month-first"), require_outcome=False)
    assert day.leads["created_at"].dt.month.tolist() == [4, 6]
    assert month.leads["created_at"].dt.month.tolist() == [3, 5]


@pytest.mark.parametrize("unit", ["s", "ms", "ns", "date"])
def test_parquet_timestamps_as_epoch_numbers_or_dates(crm_dir, crm_model, tmp_path, unit):
    folder = tmp_path / unit
    folder.mkdir()
    leads = pd.read_csv(crm_dir / "leads.csv")
    events = pd.read_csv(crm_dir / "events.csv")
    if unit == "date":  # a date column: midnight
        leads["created_at"] = pd.to_datetime(leads["created_at"]).dt.date
    else:
        scale = {"s": 1, "ms": 10**3, "ns": 10**9}[unit]
        seconds = pd.to_datetime(events["occurred_at"]).dt.as_unit("s").astype("int64")
        events["occurred_at"] = seconds * scale
    leads.to_parquet(folder / "leads.parquet")
    events.to_parquet(folder / "events.parquet")
    typed = _scores(folder, crm_model, tmp_path, "typed", AS_OF)
    assert typed.attrs["summary"].rejected == 0
    iso = tmp_path / "iso"
    shutil.copytree(crm_dir, iso)
    if unit == "date":
        leads.to_csv(iso / "leads.csv", index=False)
    _same_scores(_scores(iso, crm_model, tmp_path, "iso", AS_OF), typed)


def test_an_event_in_the_future_is_rejected_and_moves_no_score(crm_dir, crm_model, tmp_path):
    clean = _scores(crm_dir, crm_model, tmp_path, "clean")
    folder = _copy(crm_dir, tmp_path)
    events = pd.read_csv(folder / "events.csv", dtype=str)
    events.loc[40, "occurred_at"] = "2031-01-01 10:00:00"
    events.to_csv(folder / "events.csv", index=False)
    future = _scores(folder, crm_model, tmp_path, "future")
    s = future.attrs["summary"]
    assert s.tables["events"].rejected == {accounting.FUTURE: 1}
    assert s.as_of == clean.attrs["summary"].as_of
    _same_scores(clean, future)


def test_semicolons_and_decimal_commas_score_like_dots(flat_model, tmp_path):
    rows = make_flat(400, seed=21).drop(columns=["won"])
    rows["minutes_on_site"] = rows["minutes_on_site"] + 0.25  # every value has decimals
    rows.to_csv(tmp_path / "dots.csv", index=False)
    rows.to_csv(tmp_path / "commas.csv", sep=";", decimal=",", index=False)
    assert ",25;" in (tmp_path / "commas.csv").read_text()
    dots = _scores(tmp_path / "dots.csv", flat_model, tmp_path, "d")
    commas = _scores(tmp_path / "commas.csv", flat_model, tmp_path, "c")
    assert commas.attrs["summary"].rejected == 0
    _same_scores(dots, commas, "customer_ref")


def test_xeducation_with_semicolons_and_decimal_commas_scores_like_the_original(tmp_path):
    from tests.conftest import XEDU, XEDU_DROP

    if not XEDU.exists():
        pytest.skip(f"{XEDU} not on this machine")
    from leadml.config import TrainConfig
    from leadml.serving import LoadedModel
    from leadml.train import fit

    cfg = TrainConfig.model_validate(
        {
            "flat": {"target": "Converted", "id_column": "Prospect ID", "drop": XEDU_DROP[1:]},
            "model": {"baseline": False},
        }
    )
    result, _ = fit(XEDU, cfg)
    path = result.scorer.save(tmp_path / "model")
    model = LoadedModel.build(result.scorer, "leadml", "1", str(path), "fp")
    frame = pd.read_csv(XEDU)
    frame.to_csv(tmp_path / "xedu_eu.csv", sep=";", decimal=",", index=False)
    original = _scores(XEDU, model, tmp_path, "o")
    eu = _scores(tmp_path / "xedu_eu.csv", model, tmp_path, "eu")
    assert eu.attrs["summary"].rejected == 0 and len(eu) == 9240
    _same_scores(
        original.rename(columns={"Prospect ID": "id"}),
        eu.rename(columns={"Prospect ID": "id"}),
        "id",
    )


# ---- 4. files in, files out ---------------------------------------------------------------


def _accented_flat(tmp_path) -> pd.DataFrame:
    rows = make_flat(300, seed=5).drop(columns=["won"])
    rows["sales_region"] = np.where(rows["sales_region"] == "North", "Zürich", rows["sales_region"])
    rows.loc[rows.index % 7 == 0, "plan_interest"] = "Pró"
    return rows


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252", "latin-1", "utf-16"])
def test_other_encodings_score_like_utf8(flat_model, tmp_path, encoding):
    rows = _accented_flat(tmp_path)
    rows.to_csv(tmp_path / "utf8.csv", index=False)
    rows.to_csv(tmp_path / "other.csv", index=False, encoding=encoding)
    utf8 = _scores(tmp_path / "utf8.csv", flat_model, tmp_path, "u")
    other = _scores(tmp_path / "other.csv", flat_model, tmp_path, "o")
    _same_scores(utf8, other, "customer_ref")
    data = dataset.load(tmp_path / "other.csv", target=None, require_target=False)
    assert "Zürich" in set(data.leads["sales_region"])


def test_an_excel_workbook_is_read_like_its_csv(flat_model, tmp_path):
    rows = _accented_flat(tmp_path)
    rows.to_csv(tmp_path / "leads.csv", index=False)
    rows.to_excel(tmp_path / "leads.xlsx", index=False)
    _same_scores(
        _scores(tmp_path / "leads.csv", flat_model, tmp_path, "c"),
        _scores(tmp_path / "leads.xlsx", flat_model, tmp_path, "x"),
        "customer_ref",
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00\x01PK\x00binary\xff" * 50, "not a text table"),
        (b"", "the file is empty"),
        (b"customer_ref,web_visits,won\n", "header but no rows"),
        ("customer_ref,won\n".encode("utf-16"), "header but no rows"),
    ],
)
def test_files_that_are_no_table_get_one_line_and_exit_2(
    home, capsys, flat_model, content, expected
):
    path = home / "bad.csv"
    path.write_bytes(content)
    for argv in (
        ["train", "--data", str(path), "--target", "won", "--no-register"],
        ["score", "--data", str(path), "--out", str(home / "s.csv"), "--model", flat_model.uri],
    ):
        code = main(["-q", *argv])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert str(path) in err and expected in err


def test_an_xls_workbook_is_refused_with_what_to_do(home, capsys):
    path = home / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    assert main(["-q", "train", "--data", str(path), "--target", "won", "--no-register"]) == 2
    err = capsys.readouterr().err
    assert "old Excel (.xls)" in err and "CSV" in err and "Traceback" not in err


def test_out_equal_to_the_input_is_refused_before_anything_is_read(flat_csv, home, capsys):
    copy = home / "same.csv"
    shutil.copy(flat_csv, copy)
    before = copy.read_bytes()
    code = main(["-q", "score", "--data", str(copy), "--out", str(copy), "--model", "nowhere"])
    err = capsys.readouterr().err
    assert code == 2 and "would overwrite the input" in err and copy.read_bytes() == before


def test_a_failed_write_leaves_the_previous_scores_whole(
    flat_csv, flat_model, tmp_path, monkeypatch
):
    out = tmp_path / "scores.csv"
    first = _scores(flat_csv, flat_model, tmp_path, "scores")
    before = out.read_bytes()

    def half_then_full_disk(self, path, *args, **kwargs):
        with open(path, "w") as fh:
            fh.write("customer_ref,prob")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_full_disk)
    with pytest.raises(OSError, match="No space left"):
        score_file(flat_csv, out, Settings.from_env(tmp_path), flat_model.uri)
    assert out.read_bytes() == before and len(first) == 1500
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# ---- 5. personal data stays out -----------------------------------------------------------


def test_rejects_keep_row_field_and_reason_never_the_values(crm_dir, tmp_path):
    folder = _copy(crm_dir, tmp_path)
    leads = pd.read_csv(folder / "leads.csv", dtype=str)
    leads.loc[3, "created_at"] = "jane.doe@example.com"
    leads.loc[4, "converted"] = "+44 7700 900123"
    leads.to_csv(folder / "leads.csv", index=False)
    text = folder / "leads.csv"
    lines = text.read_text().splitlines()
    lines[9] = lines[9] + ",extra@example.org,+1 555 010 9999"  # a mis-delimited row
    text.write_text("\n".join(lines) + "\n")
    data = dataset.load_crm(folder)
    rej = data.rejects.frame
    assert list(rej.columns) == accounting.REJECT_COLUMNS
    assert set(rej.loc[rej["table"] == "leads", "row"]) == {4, 5, 9}
    written = rej.to_csv()
    for value in ("jane.doe@example.com", "+44 7700 900123", "extra@example.org", "555 010 9999"):
        assert value not in written
    assert "where the header has" in written


def test_a_training_stopped_by_rejects_leaves_a_failed_run_showing_them(crm_dir, home):
    import mlflow

    from leadml.config import TrainConfig
    from leadml.train import train

    folder = _copy(crm_dir, home)
    events = pd.read_csv(folder / "events.csv", dtype=str)
    events.loc[: len(events) // 10, "event_type"] = "fax_sent"
    events.to_csv(folder / "events.csv", index=False)
    with pytest.raises(ContractError, match="over the 5% limit"):
        train(folder, TrainConfig(), Settings.from_env())
    (run,) = mlflow.search_runs(experiment_names=["leadml"], output_format="list")
    assert run.info.status == "FAILED"
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert "train-rejects.csv" in arts
