"""Data-contract tests: broken files fail with a message a person can act on; bad rows are
rejected one by one while the good rows go on."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from leadml import accounting, contract, dataset, records
from leadml.errors import ContractError


def _copy_crm(crm_dir, tmp_path):
    out = tmp_path / "crm"
    shutil.copytree(crm_dir, out)
    return out


def test_crm_folder_loads_with_no_rejects(crm_dir):
    data = dataset.load(crm_dir)
    assert data.kind == "crm"
    assert len(data.leads) == 3000
    assert len(data.rejects) == 0
    assert data.events["event_type"].isin(contract.EVENT_TYPES).all()
    assert len(data.source["hash"]) == 16


def test_missing_required_column_names_file_column_and_suggestion(crm_dir, tmp_path):
    folder = _copy_crm(crm_dir, tmp_path)
    leads = pd.read_csv(folder / "leads.csv").rename(columns={"created_at": "created"})
    leads.to_csv(folder / "leads.csv", index=False)
    with pytest.raises(ContractError) as err:
        dataset.load(folder)
    msg = str(err.value)
    assert "leads.csv" in msg and "'created_at'" in msg and "Did you mean 'created'" in msg


def test_folder_without_events_says_what_a_crm_folder_holds(tmp_path):
    (tmp_path / "leads.csv").write_text(
        "lead_id,created_at,converted,converted_at\n1,2026-01-01,0,\n"
    )
    with pytest.raises(ContractError, match="no events.csv, events.parquet or events/ folder"):
        dataset.load(tmp_path)


def test_empty_file_and_header_only_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ContractError, match="empty"):
        dataset.load(empty, target="y")
    header = tmp_path / "header.csv"
    header.write_text("id,y,x\n")
    with pytest.raises(ContractError, match="no rows"):
        dataset.load(header, target="y")


def test_duplicate_ids_keep_the_first_row_and_reject_the_rest(tmp_path):
    path = tmp_path / "dup.csv"
    pd.DataFrame(
        {"id": ["a", "b", "a", "c", "a"], "y": [0, 1, 1, 0, 1], "x": [1, 2, 3, 4, 5]}
    ).to_csv(path, index=False)
    data = dataset.load(path, target="y", id_column="id")
    assert data.leads["id"].tolist() == ["a", "b", "c"] and data.leads["x"].tolist() == [
        "1",
        "2",
        "4",
    ]
    rej = data.rejects.frame
    assert rej["row"].tolist() == [3, 5] and set(rej["reason"]) == {accounting.DUPLICATE_ID}
    assert data.counts()["leads"].as_dict()["used"] == 3


def test_target_that_is_not_binary_fails_listing_values(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"y": [0, 1, 2, 3, 4, 5], "x": range(6)}).to_csv(path, index=False)
    with pytest.raises(ContractError) as err:
        dataset.load(path, target="y")
    assert "'y'" in str(err.value) and "not binary" in str(err.value) and "'2'" in str(err.value)


def test_a_few_bad_target_values_are_rejected_not_fatal(tmp_path):
    path = tmp_path / "t.csv"
    y = ["yes", "no"] * 20 + ["maybe"]
    pd.DataFrame({"y": y, "x": range(41)}).to_csv(path, index=False)
    data = dataset.load(path, target="y")
    assert len(data.leads) == 40
    rej = data.rejects.frame
    assert rej["row"].tolist() == [41] and rej["field"].tolist() == ["y"]
    assert "maybe" not in rej.to_csv()  # rejects never copy values (they may be personal)


def test_unparseable_dates_column_fails_but_single_bad_date_is_rejected(crm_dir, tmp_path):
    folder = _copy_crm(crm_dir, tmp_path)
    leads = pd.read_csv(folder / "leads.csv")
    leads.loc[5, "created_at"] = "last tuesday"
    leads.to_csv(folder / "leads.csv", index=False)
    data = dataset.load(folder)
    assert len(data.leads) == 2999
    rej = data.rejects.frame
    assert (rej["field"] == "created_at").sum() == 1 and rej.loc[
        rej["field"] == "created_at", "row"
    ].item() == 6
    # its events are rejected too (their lead is gone), not silently dropped
    lost = leads.loc[5, "lead_id"]
    assert (rej.loc[rej["file"] == "events.csv", "lead_id"] == str(lost)).all()
    assert (rej["file"] == "events.csv").sum() == (
        pd.read_csv(folder / "events.csv")["lead_id"] == lost
    ).sum()

    leads["created_at"] = "soon"
    leads.to_csv(folder / "leads.csv", index=False)
    with pytest.raises(ContractError, match="'created_at'.*not dates.*ISO 8601"):
        dataset.load(folder)


def test_bad_event_rows_are_rejected_with_reasons(crm_dir, tmp_path):
    folder = _copy_crm(crm_dir, tmp_path)
    events = pd.read_csv(folder / "events.csv")
    events.loc[0, "event_type"] = "fax_sent"
    events.loc[1, "lead_id"] = 1
    events.loc[2, "occurred_at"] = "not a time"
    events.to_csv(folder / "events.csv", index=False)
    data = dataset.load(folder)
    rej = data.rejects.frame.set_index("row")
    assert rej.loc[1, "field"] == "event_type" and "unknown event type" in rej.loc[1, "reason"]
    assert rej.loc[2, "field"] == "lead_id" and "no lead" in rej.loc[2, "reason"]
    assert rej.loc[3, "field"] == "occurred_at"
    assert len(data.events) == len(events) - 3


def test_converted_lead_without_conversion_date_is_rejected(crm_dir, tmp_path):
    folder = _copy_crm(crm_dir, tmp_path)
    leads = pd.read_csv(folder / "leads.csv")
    row = leads.index[leads["converted"] == 1][0]
    leads.loc[row, "converted_at"] = np.nan
    leads.to_csv(folder / "leads.csv", index=False)
    data = dataset.load(folder)
    rej = data.rejects.frame
    assert rej["field"].tolist()[0] == "converted_at" and rej["row"].tolist()[0] == row + 1


def test_flat_separator_is_sniffed_and_yes_no_target_parsed(flat_csv):
    data = dataset.load(flat_csv, target="won")
    assert data.leads.shape[1] > 5  # the ';' was understood
    assert set(np.unique(data.leads["won"])) == {0.0, 1.0}
    assert data.id_column == "row_id"


def test_flat_missing_target_column_suggests_close_names(flat_csv):
    with pytest.raises(ContractError, match="'Won'.*Did you mean 'won'.*--target"):
        dataset.load(flat_csv, target="Won")


def test_flat_drop_of_unknown_column_is_an_error(flat_csv):
    with pytest.raises(ContractError, match="--drop"):
        dataset.load(flat_csv, target="won", drop=["nope"])


def test_missing_path_says_what_to_pass(tmp_path):
    with pytest.raises(ContractError, match="no such file or folder"):
        dataset.load(tmp_path / "missing.csv", target="y")


def test_pii_columns_are_recognised():
    cols = [
        "Email",
        "contact_email",
        "Phone Number",
        "first_name",
        "Last Name",
        "name",
        "job_title",
        "company_size",
    ]
    assert dataset.pii_columns(cols) == [
        "Email",
        "contact_email",
        "Phone Number",
        "first_name",
        "Last Name",
        "name",
    ]


def test_request_records_round_trip(crm_small):
    leads = crm_small.leads.head(3)
    events = crm_small.events[crm_small.events["lead_id"].isin(leads["lead_id"])]
    rec = records.from_tables(leads, events, pd.Timestamp("2026-06-30"))
    back_leads, back_events, as_of = records.to_tables(rec, crm=True)
    assert len(back_events) == len(events)
    assert (as_of == np.datetime64("2026-06-30T00:00:00")).all()
    assert back_leads["lead_id"].tolist() == leads["lead_id"].tolist()


def test_personal_data_is_redacted_from_errors_and_rejects(tmp_path):
    path = tmp_path / "p.csv"
    pd.DataFrame({"Email": ["ann@x.org", "bob@y.org", "ann@x.org"], "y": [0, 1, 1]}).to_csv(
        path, index=False
    )
    data = dataset.load(path, target="y", id_column="Email")
    rej = data.rejects.frame
    assert rej["reason"].tolist() == [accounting.DUPLICATE_ID]
    assert rej["lead_id"].tolist() == ["<personal data>"] and "ann@x.org" not in rej.to_csv()
    rej = accounting.Rejects()
    rej.add("leads", "p.csv", np.array([0]), ["+1 555 0100"], "phone", "bad", "lead_id")
    assert rej.frame["lead_id"].tolist() == ["<personal data>"]
