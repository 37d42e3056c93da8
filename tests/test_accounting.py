"""Every row accounted for: Rejects (order, redaction, counts), TableCount, and the reject-share
rule that stops a run whose table is mostly garbage."""

from __future__ import annotations

import pandas as pd
import pytest

from leadml import accounting, privacy
from leadml.accounting import REJECT_COLUMNS, Rejects, TableCount, TooManyRejects
from leadml.dataset import LeadData
from leadml.errors import ContractError, LeadmlError


def _data(read: dict[str, int], rejects: Rejects) -> LeadData:
    return LeadData(
        kind="crm",
        leads=pd.DataFrame(),
        events=None,
        id_column="lead_id",
        target=None,
        date_column=None,
        rejects=rejects,
        source={"paths": ["in/leads.csv", "in/events.csv"], "hash": "x"},
        read=read,
    )


def _rejects(table: str, n: int, reason: str = "bad date") -> Rejects:
    r = Rejects()
    r.add(table, f"{table}.csv", range(n), [f"L{i}" for i in range(n)], "created_at", reason)
    return r


# ---- Rejects ------------------------------------------------------------------------------


def test_rows_are_numbered_from_one_after_the_header_and_empty_adds_are_ignored():
    r = Rejects()
    r.add("leads", "leads.csv", [], [], "created_at", "bad date")
    assert len(r) == 0 and r.parts == []
    r.add("leads", "leads.csv", [0, 4], ["a", "b"], "created_at", "bad date")
    assert r.frame["row"].tolist() == [1, 5]
    assert len(r) == 2


def test_frame_orders_tables_then_files_as_read_then_rows_whatever_the_order_found():
    r = Rejects()
    r.add("events", "events.csv", [9, 2], ["a", "b"], "event_type", "unknown event type")
    r.add("leads", "part-1.csv", [7], ["c"], "created_at", "bad date")
    r.add("leads", "part-0.csv", [3], ["d"], "created_at", "bad date")
    r.add("leads", "part-1.csv", [1], ["e"], "created_at", "bad date")
    f = r.frame
    assert f["table"].tolist() == ["leads", "leads", "leads", "events", "events"]
    # part-1 was read (added) before part-0: files keep the order they were read in
    files = ["part-1.csv", "part-1.csv", "part-0.csv", "events.csv", "events.csv"]
    assert f["file"].tolist() == files
    assert f["row"].tolist() == [2, 8, 4, 3, 10]
    assert f["lead_id"].tolist() == ["e", "c", "d", "b", "a"]


def test_a_reject_holds_no_row_values_and_no_personal_id():
    r = Rejects()
    r.add("leads", "export.csv", [0], ["person1@example.org"], "phone", "bad number", "lead_id")
    r.add("leads", "export.csv", [1], ["C000001"], "visits", "not a finite number", "Email")
    r.add("leads", "export.csv", [2], ["C000002"], "visits", "not a finite number", "lead_id")
    f = r.frame
    assert list(f.columns) == REJECT_COLUMNS  # table, file, row, id, field, reason: no value
    # redacted: an id that looks like an email, and any id of a column named like personal data
    assert f["lead_id"].tolist() == [privacy.REDACTED, privacy.REDACTED, "C000002"]
    assert "person1@example.org" not in f.to_csv()
    # kept as read inside, so events of a rejected lead can still be matched to it
    assert r.ids("leads") == {"person1@example.org", "C000001", "C000002"}


def test_missing_ids_become_empty_text_and_ids_are_per_table():
    r = Rejects()
    r.add("leads", "leads.csv", [0, 1], [None, float("nan")], "lead_id", "missing id")
    r.add("events", "events.csv", [0], ["L7"], "lead_id", accounting.NO_LEAD)
    assert r.frame["lead_id"].tolist() == ["", "", "L7"]
    assert r.ids("events") == {"L7"} and "L7" not in r.ids("leads")


def test_counts_give_read_used_and_rejected_by_reason_commonest_first():
    r = Rejects()
    r.add("events", "events.csv", [0], ["a"], "occurred_at", "not a time")
    r.add("events", "events.csv", [1, 2, 3], ["a", "b", "c"], "event_type", "unknown event type")
    counts = r.counts({"leads": 10, "events": 100})
    assert counts["leads"] == TableCount("leads", 10, {})
    ev = counts["events"]
    assert list(ev.rejected.items()) == [("unknown event type", 3), ("not a time", 1)]
    assert (ev.read, ev.used, ev.rejected_rows) == (100, 96, 4)


def test_extend_and_summary_one_line_per_file_field_and_reason():
    a, b = Rejects(), Rejects()
    a.add("leads", "leads.csv", [0, 1], ["x", "y"], "created_at", "bad date")
    b.add("leads", "leads.csv", [5], ["z"], "created_at", "bad date")
    b.add("events", "events.csv", [2], ["x"], "lead_id", accounting.LEAD_REJECTED)
    a.extend(b)
    assert len(a) == 4
    assert a.summary() == [
        "leads.csv: 3 row(s) rejected, created_at: bad date",
        f"events.csv: 1 row(s) rejected, lead_id: {accounting.LEAD_REJECTED}",
    ]
    assert Rejects().summary() == []
    assert list(Rejects().frame.columns) == REJECT_COLUMNS and Rejects().frame.empty


# ---- TableCount ---------------------------------------------------------------------------


def test_table_count_share_used_and_an_empty_table():
    c = TableCount("events", 8, {"unknown event type": 2})
    assert (c.used, c.rejected_rows, c.share) == (6, 2, 0.25)
    assert TableCount("events", 0, {}).share == 0.0


def test_table_count_line_shortens_reasons_and_says_how_many_more():
    c = TableCount(
        "events",
        61234,
        {
            "unknown event type (expected one of ...)": 3,
            "in the future; later than now": 2,
            "bad time": 1,
            "no lead with this id in leads": 1,
        },
    )
    line = c.line()
    assert line.startswith("events") and "61,234 read" in line and "61,227 used" in line
    assert "7 rejected" in line
    assert "(3 unknown event type; 2 in the future; 1 bad time; 1 more reasons)" in line
    assert "(" not in TableCount("leads", 5, {}).line()


def test_table_count_as_dict_round_trips_with_reasons_as_pairs():
    c = TableCount("leads", 50, {"bad date": 3, "duplicate id": 1})
    d = c.as_dict()
    assert d == {
        "read": 50,
        "used": 46,
        "rejected": 4,
        "reasons": [["bad date", 3], ["duplicate id", 1]],
    }
    assert TableCount.from_dict("leads", d) == c


# ---- the reject-share rule ----------------------------------------------------------------


def test_a_share_exactly_at_the_limit_passes_and_one_row_more_stops():
    counts = _data({"leads": 10}, _rejects("leads", 2)).check_reject_share(0.2)
    assert counts["leads"].rejected_rows == 2
    with pytest.raises(TooManyRejects):
        _data({"leads": 10}, _rejects("leads", 3)).check_reject_share(0.2)


def test_too_many_rejects_names_file_counts_commonest_reason_and_the_fix():
    rejects = _rejects("events", 6, "unknown event type")
    rejects.add("events", "events.csv", [6], ["L6"], "occurred_at", "not a time")
    with pytest.raises(TooManyRejects) as caught:
        _data({"leads": 4, "events": 10}, rejects).check_reject_share(0.5)
    exc = caught.value
    assert isinstance(exc, ContractError) and isinstance(exc, LeadmlError)
    text = str(exc)
    assert text.startswith(
        "in/events.csv: 7 of 10 events rows rejected (70.0%, over the 50% limit)"
    )
    assert "commonest reason: unknown event type (6 rows)" in text
    assert "--max-reject-share" in text and "input.max_reject_share" in text
    # the rejects travel with the error, so the caller can still write them down
    assert len(exc.rejects) == 7 and list(exc.rejects.columns) == REJECT_COLUMNS


def test_an_empty_table_never_trips_the_rule():
    counts = _data({"leads": 0, "events": 0}, Rejects()).check_reject_share(0.0)
    assert counts["leads"].read == 0 and counts["events"].share == 0.0
