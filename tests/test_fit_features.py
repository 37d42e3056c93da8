"""Fit features: job titles to seniority and department, countries to regions, category
vocabularies and codes, yes/no and number parsing; each on values written in the test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml import fit_features
from leadml.fit_features import (
    MIN_CATEGORY_COUNT,
    binary_value,
    clean,
    codes,
    crm_category_counts,
    crm_fit_columns,
    department_of,
    numbers,
    region_name,
    vocabulary,
    vocabulary_from_counts,
)


@pytest.mark.parametrize(
    ("title", "seniority"),
    [
        ("VP of Marketing", "VP"),
        ("vice president, sales", "VP"),
        ("Chief Marketing Officer", "C-level"),
        ("CMO", "C-level"),
        ("Founder & CEO", "C-level"),
        ("Sr. Director, Finance", "Director"),
        ("Head of Engineering", "Director"),
        ("it mgr", "Manager"),
        ("Team Lead, HR", "Manager"),
        ("Marketing Analyst", "Individual"),
        ("MBA candidate", "Student"),
        ("Sales Intern", "Student"),
        (None, "Unknown"),
    ],
)
def test_seniority_from_messy_titles(title, seniority):
    assert fit_features.normalise_seniority(pd.Series([title])).item() == seniority


def test_normaliser_recovers_the_generator_seniority(crm_small):
    """The synthetic titles were drawn from a known seniority; the normaliser should find it."""
    titles = crm_small.leads["job_title"]
    found = fit_features.normalise_seniority(titles)
    known = found != "Unknown"
    assert known.mean() > 0.9
    # every generated title maps to one of the generator's levels
    assert set(found[known]) <= {"C-level", "VP", "Director", "Manager", "Individual", "Student"}


def test_per_value_small_and_large_inputs_agree():
    """Requests (a few rows) take a dict path, files take factorize: same answers, same missing."""
    values = ["VP Sales", None, np.nan, pd.NA, "  ", "cmo", "VP Sales", 7]
    small = pd.Series(values, dtype=object)
    large = pd.Series(values * 20, dtype=object)
    assert len(small) <= fit_features._SMALL < len(large)
    got_small = fit_features.per_value(small, fit_features.seniority_of)
    got_large = fit_features.per_value(large, fit_features.seniority_of)
    assert list(got_large) == list(got_small) * 20
    assert list(got_small) == [
        "VP",
        "Unknown",
        "Unknown",
        "Unknown",
        "Unknown",
        "C-level",
        "VP",
        "Individual",
    ]


@pytest.mark.parametrize(
    ("title", "department"),
    [
        ("VP of Marketing", "Marketing"),
        ("CTO", "Engineering"),
        ("Chief Technology Officer", "Engineering"),
        ("Chief Financial Officer", "Finance"),
        ("Founder & CEO", "Executive"),
        ("it mgr", "IT"),
        ("Director of Information Security", "IT"),
        ("Head of People", "HR"),
        ("Supply Chain Lead", "Operations"),
        ("Account Executive", "Sales"),
        ("Sales Operations Manager", "Sales"),  # the first rule that matches wins
        ("Barista", "Other"),
        (None, "Unknown"),
        ("   ", "Unknown"),
    ],
)
def test_department_from_messy_titles(title, department):
    assert department_of(title) == department


@pytest.mark.parametrize(
    ("country", "region"),
    [
        ("USA", "NA"),
        ("Ca", "NA"),
        (" germany ", "EMEA"),
        ("IN", "APAC"),
        ("Brazil", "LATAM"),
        ("Atlantis", "Other"),
        (None, "Unknown"),
        ("", "Unknown"),
    ],
)
def test_region_from_country_any_case_and_spacing(country, region):
    assert region_name(country) == region


def test_clean_strips_and_treats_blank_and_nan_as_missing():
    assert [clean(v) for v in (None, np.nan, "", "   ")] == [None] * 4
    assert clean("  Retail ") == "Retail" and clean(7) == "7"


def test_crm_fit_columns_on_a_hand_made_lead():
    leads = pd.DataFrame(
        {
            "job_title": ["VP of Marketing", None],
            "company_size": [" 51-200 ", ""],
            "industry": ["Retail", None],
            "country": ["UK", "Narnia"],
            "lead_source": ["webinar", "ads"],
        }
    )
    cols = crm_fit_columns(leads)
    assert list(cols) == fit_features.CRM_CATEGORIES
    assert cols["seniority"].tolist() == ["VP", "Unknown"]
    assert cols["department"].tolist() == ["Marketing", "Unknown"]
    assert cols["company_size"].tolist() == ["51-200", None]
    assert cols["region"].tolist() == ["EMEA", "Other"]


def test_category_counts_of_parts_add_up_to_the_counts_of_the_whole():
    """The Dask engine counts per partition and adds the counts up."""
    leads = pd.DataFrame(
        {
            "job_title": ["CMO", "VP Sales", "cmo", None, "Sales Intern", "VP Sales"],
            "company_size": ["1-10", "1-10", None, "11-50", "1-10", "11-50"],
            "industry": ["Retail"] * 6,
            "country": ["US", "usa", "France", None, "India", "US"],
            "lead_source": ["ads", "ads", "seo", "seo", "ads", None],
        }
    )
    whole = crm_category_counts(leads)
    parts = [crm_category_counts(leads.iloc[:2]), crm_category_counts(leads.iloc[2:])]
    for name, counts in whole.items():
        summed = parts[0][name].add(parts[1][name], fill_value=0).astype(int)
        pd.testing.assert_series_equal(summed.sort_index(), counts.sort_index(), check_names=False)
    assert whole["seniority"].to_dict() == {"C-level": 2, "VP": 2, "Student": 1, "Unknown": 1}
    assert whole["region"].to_dict() == {"NA": 3, "EMEA": 1, "APAC": 1, "Unknown": 1}


def test_a_vocabulary_keeps_frequent_values_top_n_ties_by_name_sorted():
    n = MIN_CATEGORY_COUNT
    counts = pd.Series(
        {"Retail": n + 5, "Banking": n + 5, "Mining": n + 1, "Zoo": n, "Rare": n - 1}
    )
    assert vocabulary_from_counts(counts, 10) == ["Banking", "Mining", "Retail", "Zoo"]
    # the top 3 by count; Mining (n + 1) beats Zoo (n); the answer is sorted by name
    assert vocabulary_from_counts(counts, 3) == ["Banking", "Mining", "Retail"]
    # a tie at the cut goes by name, so partial counts added in any order agree
    tie = pd.Series({"b": n, "a": n, "c": n})
    assert vocabulary_from_counts(tie, 2) == ["a", "b"]


def test_a_value_that_looks_personal_is_never_a_category():
    counts = pd.Series({"ceo@example.com": 50, "+44 20 7946 0958": 40, "Retail": 30})
    assert vocabulary_from_counts(counts, 10) == ["Retail"]


def test_vocabulary_of_raw_values_ignores_missing():
    values = pd.Series(["a"] * MIN_CATEGORY_COUNT + [None] * 20 + ["b"] * 2)
    assert vocabulary(values, 10) == ["a"]


def test_codes_index_the_vocabulary_unseen_get_their_own_code_missing_stays_missing():
    vocab = ["EMEA", "NA"]
    values = pd.Series(["usa", "Germany", "Atlantis", None, "  "])
    got, unseen = codes(values, vocab, region_name)
    # region_name maps None and blank to "Unknown", a value never seen in training
    np.testing.assert_array_equal(got, [1.0, 0.0, 2.0, 2.0, 2.0])
    assert unseen.tolist() == [False, False, True, True, True]
    plain, plain_unseen = codes(pd.Series(["NA", None, " EMEA ", "APAC"]), vocab)
    np.testing.assert_array_equal(plain, [1.0, np.nan, 0.0, 2.0])
    assert plain_unseen.tolist() == [False, False, False, True]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Yes", 1.0), (" no ", 0.0), ("TRUE", 1.0), ("0", 0.0), ("maybe", np.nan), (None, np.nan)],
)
def test_binary_value_reads_yes_no_spellings(value, expected):
    assert binary_value(value) == pytest.approx(expected, nan_ok=True)


def test_numbers_from_text_with_a_reason_per_unusable_row():
    num, reasons = numbers(pd.Series([" 3 ", "", None, "twelve", "inf", "-1", "2.5"]), 0.0)
    np.testing.assert_array_equal(num[[0, 5, 6]], [3.0, -1.0, 2.5])
    assert np.isnan(num[[1, 2, 3]]).all()
    assert reasons[:3].tolist() == ["", "", ""]  # missing is allowed, not a reject
    assert reasons[3] == reasons[4] == "not a finite number"
    assert reasons[5].startswith("below 0, the lowest value in training")
    assert reasons[6] == ""


def test_numbers_already_numeric_and_without_a_minimum():
    num, reasons = numbers(pd.Series([1.0, np.nan, -4.0, np.inf]), None)
    np.testing.assert_array_equal(num[[0, 2]], [1.0, -4.0])
    assert reasons.tolist() == ["", "", "", "not a finite number"]
