"""Raw values to typed ones: ids, timestamps, decimal commas, personal-looking values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from leadml import privacy, values


def _text(*items) -> pd.Series:
    return pd.Series(list(items), dtype=str)


def test_ids_are_text_and_integral_floats_are_integers():
    assert values.id_text(_text("000123", " 123 ", "", None)).tolist()[:2] == ["000123", "123"]
    assert values.id_text(_text("", None)).isna().all()
    assert values.id_text(pd.Series([100001.0, np.nan, 2.5])).tolist()[::2] == ["100001", "2.5"]
    assert values.id_text(pd.Series([7, 8])).tolist() == ["7", "8"]


@pytest.mark.parametrize(
    ("items", "order", "first"),
    [
        (("31/12/2025 14:00", "01/02/2026 09:30"), "day-first", "2026-02-01 09:30"),
        (("31.12.2025", "01.02.2026"), "day-first", "2026-02-01"),
        (("12/31/2025 2:00 PM", "01/02/2026 9:15 AM"), "month-first", "2026-01-02 09:15"),
        (("2025-12-31T14:00:00Z", "2026-01-02 10:00+01:00"), None, "2026-01-02 09:00"),
    ],
)
def test_the_day_month_order_comes_from_the_values(items, order, first):
    parsed = values.parse_dates(_text(*items))
    assert parsed.order == order and not parsed.bad.any()
    assert parsed.stamps.iloc[1] == pd.Timestamp(first)


def test_ambiguous_dates_need_an_order_and_contradicting_ones_are_bad():
    with pytest.raises(values.AmbiguousDates):
        values.parse_dates(_text("03/04/2026", "05/06/2026"))
    day = values.parse_dates(_text("03/04/2026"), order="day-first")
    assert day.stamps.iloc[0] == pd.Timestamp("2026-04-03")
    mixed = values.parse_dates(_text("31/12/2025", "30/11/2025", "12/31/2025"))
    assert mixed.order == "day-first" and mixed.bad.tolist() == [False, False, True]


def test_epoch_numbers_dates_and_garbage():
    second = pd.Timestamp("2026-01-01")
    for scale in (1, 10**3, 10**6, 10**9):
        assert values.parse_dates(pd.Series([1767225600 * scale])).stamps.iloc[0] == second
    assert values.parse_dates(_text("1767225600")).stamps.iloc[0] == second
    assert values.parse_dates(pd.Series([dt.date(2026, 1, 1)])).stamps.iloc[0] == second
    junk = values.parse_dates(_text("last tuesday", "soon", "", None))
    assert junk.bad.tolist() == [True, True, False, False]


def test_as_of_is_iso_only():
    assert values.timestamp("2026-06-30", "--as-of") == pd.Timestamp("2026-06-30")
    with pytest.raises(values.ContractError, match="ISO 8601"):
        values.timestamp("03/04/2026", "--as-of")


@pytest.mark.parametrize(
    ("items", "sep", "expected"),
    [
        (("1,5", "2", "3,25"), ";", ["1.5", "2", "3.25"]),
        (("1.234,5", "7"), ";", ["1234.5", "7"]),
        (("1,234", "2,500"), ";", ["1.234", "2.500"]),
        (("1,234", "2,500"), ",", ["1234", "2500"]),
        (("1,234.5", "3"), ",", ["1234.5", "3"]),
    ],
)
def test_decimal_commas(items, sep, expected):
    assert values.decimal_commas(_text(*items), sep).tolist() == expected


def test_text_with_commas_is_not_a_number():
    assert values.decimal_commas(_text("Yes, please", "no"), ";") is None
    assert values.decimal_commas(_text("1.5", "2"), ";") is None  # no comma: nothing to do


@pytest.mark.parametrize(
    ("value", "personal"),
    [
        ("jane@example.com", True),
        ("+1-555-0100", True),
        ("07700 900123", True),
        ("1234567890", True),
        ("1001-5000", False),
        ("2026-01-01", False),
        ("12345678", False),
        ("Google", False),
        ("51-200", False),
    ],
)
def test_values_that_look_personal(value, personal):
    assert privacy.looks_personal(value) is personal


def test_personal_columns_by_name_or_by_values():
    assert privacy.personal_column("Account Owner", _text("a", "b"))
    assert privacy.personal_column("Owner Name", _text("Ann", "Bo"))
    assert privacy.personal_column("Contact", _text("a@x.example", "b@y.example", "c"))
    assert not privacy.personal_column("Lead Source", _text("Google", "Referral"))
