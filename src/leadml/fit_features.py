"""Fit features: who the lead is, from its profile fields.

Messy job titles become a seniority and a department, countries a region, and every other
profile field a category code over the vocabulary frozen at training (a value not seen then
gets its own code; missing stays missing). Flat exports' numbers and yes/no fields are read
here too. Work is done once per distinct value (`per_value`): a million leads hold a few
hundred titles, and a request holds one lead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from leadml import privacy
from leadml.values import binary_word

CRM_CATEGORIES = ["seniority", "department", "company_size", "industry", "region", "lead_source"]
SENIORITY_LEVELS = ["C-level", "VP", "Director", "Manager", "Individual", "Student", "Unknown"]
_SENIORITY_RULES = [
    ("Student", r"\b(?:student|intern|candidate|trainee)\b"),
    ("VP", r"\b(?:vp|svp|evp|avp)\b|v\.p\.|vice.?president"),
    (
        "C-level",
        r"\bchief\b|\bc[a-z]{1,2}o\b|\bfounder\b|\bco-founder\b|\bowner\b|\bpresident\b|\bpartner\b",
    ),
    ("Director", r"\bdirector\b|\bhead of\b|\bdir\b\.?"),
    ("Manager", r"\bmanager\b|\bmgr\b|\blead\b|\bsupervisor\b"),
]
_DEPARTMENT_RULES = [
    ("Marketing", r"marketing|\bcmo\b|growth|brand"),
    ("Sales", r"sales|\bcro\b|account exec|business development|\bbdr\b|\bsdr\b|revenue"),
    ("Engineering", r"engineer|\bcto\b|developer|software|technology"),
    ("Finance", r"financ|\bcfo\b|accounting|controller"),
    ("Operations", r"operation|\bcoo\b|supply|logistics"),
    ("HR", r"\bhr\b|human resources|people|talent|recruit|\bchro\b"),
    ("IT", r"\bit\b|\bcio\b|information|systems|security"),
    ("Executive", r"\bceo\b|chief executive|founder|owner|president"),
]
REGIONS = {
    "NA": ["us", "usa", "united states", "united states of america", "canada", "ca"],
    "LATAM": ["mexico", "brazil", "argentina", "chile", "colombia", "peru"],
    "EMEA": [
        "uk",
        "united kingdom",
        "gb",
        "germany",
        "de",
        "france",
        "fr",
        "netherlands",
        "nl",
        "spain",
        "italy",
        "sweden",
        "ireland",
        "switzerland",
        "poland",
        "south africa",
        "uae",
        "united arab emirates",
        "nigeria",
        "saudi arabia",
        "qatar",
        "kuwait",
        "oman",
        "bahrain",
        "belgium",
        "denmark",
        "norway",
        "finland",
    ],
    "APAC": [
        "india",
        "in",
        "singapore",
        "sg",
        "australia",
        "au",
        "japan",
        "china",
        "hong kong",
        "new zealand",
        "indonesia",
        "philippines",
        "malaysia",
        "south korea",
        "sri lanka",
        "bangladesh",
        "vietnam",
    ],
}
_REGION_OF = {c: r for r, names in REGIONS.items() for c in names}
MIN_CATEGORY_COUNT = 5
_SMALL = 64  # rows: below this, per-value work is plain Python (the service's case)


def clean(value) -> str | None:
    """A raw field value as stripped text; None when missing or blank."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _first_rule(text: str | None, rules: list[tuple[str, re.Pattern]], default: str) -> str:
    if not text:
        return "Unknown"
    lower = text.lower()
    return next((name for name, rx in rules if rx.search(lower)), default)


_SENIORITY_RX = [(level, re.compile(pattern)) for level, pattern in _SENIORITY_RULES]
_DEPARTMENT_RX = [(dept, re.compile(pattern)) for dept, pattern in _DEPARTMENT_RULES]


def seniority_of(title) -> str:
    """One messy job title ("vp of marketing", "Sr. Director, Sales", "CMO") to a seniority level."""
    return _first_rule(clean(title), _SENIORITY_RX, "Individual")


def department_of(title) -> str:
    return _first_rule(clean(title), _DEPARTMENT_RX, "Other")


def region_name(country) -> str:
    text = clean(country)
    return "Unknown" if text is None else _REGION_OF.get(text.lower(), "Other")


def per_value(values: pd.Series, fn: Callable[[Any], Any], dtype: Any = object) -> np.ndarray:
    """`fn` applied once per distinct value, spread back to every row.

    Lead fields repeat a lot (a few hundred titles across a million leads) and a request holds
    one lead, so per distinct value is fast at both ends.
    """
    if len(values) <= _SMALL:  # a request: a dict beats factorize's fixed cost
        seen: dict = {}
        out = []
        for v in values.tolist():
            key = None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v
            if key not in seen:
                seen[key] = fn(key)
            out.append(seen[key])
        return np.array(out, dtype=dtype)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.array([fn(u) for u in uniques] + [fn(None)], dtype=dtype)
    return mapped[codes]  # code -1 (missing) picks the last entry, fn(None)


def normalise_seniority(titles: pd.Series) -> pd.Series:
    """Messy job titles to seniority levels (see `seniority_of`)."""
    return pd.Series(per_value(titles, seniority_of), index=titles.index, dtype=object)


def normalise_department(titles: pd.Series) -> pd.Series:
    return pd.Series(per_value(titles, department_of), index=titles.index, dtype=object)


def region_of(countries: pd.Series) -> pd.Series:
    return pd.Series(per_value(countries, region_name), index=countries.index, dtype=object)


def vocabulary(values: pd.Series, max_categories: int) -> list[str]:
    return vocabulary_from_counts(values.dropna().astype(str).value_counts(), max_categories)


def vocabulary_from_counts(counts: pd.Series, max_categories: int) -> list[str]:
    """The categories a model learns: values seen at least MIN_CATEGORY_COUNT times, the most
    frequent `max_categories` of them (ties by name, so partial counts added up in any order
    give the same vocabulary). A value that looks like an email address or a phone number is
    never one: a model's categories end up in its files, its schema and its card."""
    counts = counts[counts >= MIN_CATEGORY_COUNT]
    counts = counts[[not privacy.looks_personal(str(k)) for k in counts.index]]
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:max_categories]
    return sorted(str(k) for k, _ in ranked)


# CRM fit features: name -> (lead field it comes from, per-value normaliser)
CRM_FIT = {
    "seniority": ("job_title", seniority_of),
    "department": ("job_title", department_of),
    "company_size": ("company_size", clean),
    "industry": ("industry", clean),
    "region": ("country", region_name),
    "lead_source": ("lead_source", clean),
}


def crm_fit_columns(leads: pd.DataFrame) -> dict[str, pd.Series]:
    return {
        name: pd.Series(per_value(leads[field_name], fn), index=leads.index, dtype=object)
        for name, (field_name, fn) in CRM_FIT.items()
    }


def crm_category_counts(leads: pd.DataFrame) -> dict[str, pd.Series]:
    """How often each normalised fit value occurs among `leads`; counts of parts of the leads
    add up to the counts of the whole (the Dask engine counts per partition)."""
    return {
        name: series.dropna().astype(str).value_counts()
        for name, series in crm_fit_columns(leads).items()
    }


def codes(
    values: pd.Series, vocabulary: list[str], normalise: Callable[[Any], Any] = clean
) -> tuple[np.ndarray, np.ndarray]:
    """Category codes: index in the vocabulary, len(vocabulary) for a value not seen in
    training, NaN when missing. Also returns which rows held an unseen value."""
    index = {v: float(i) for i, v in enumerate(vocabulary)}
    other = float(len(vocabulary))

    def code(value) -> float:
        text = normalise(value)
        return np.nan if text is None else index.get(text, other)

    codes = per_value(values, code, dtype=np.float64)
    return codes, codes == other


def binary_value(value) -> float:
    text = clean(value)
    answer = binary_word(text) if text else None
    return np.nan if answer is None else float(answer)


def numbers(values: pd.Series, minimum: float | None) -> tuple[np.ndarray, np.ndarray]:
    """A numeric field as float64, and per row why it cannot be used ("" when it can)."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        num = values.to_numpy(np.float64, na_value=np.nan)
        given = ~np.isnan(num)
    else:
        raw = values.astype("string").str.strip()
        num = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64, na_value=np.nan)
        given = (raw.notna() & (raw != "")).fillna(False).to_numpy(bool)
    reasons = np.full(len(num), "", dtype=object)
    reasons[given & ~np.isfinite(num)] = "not a finite number"
    if minimum is not None:
        reasons[np.isfinite(num) & (num < minimum)] = (
            f"below {minimum:g}, the lowest value in training (a count or a duration?)"
        )
    return num, reasons
