"""Personal data: which columns and values are personal, and how they are kept out.

Emails, names, phone numbers and the like are never model features, never category values
of a model, and never written to rejects files, logs, MLflow artefacts, model files or the
service's schema. A column is personal by its name ("Email", "Owner Name", "Account Owner")
or by its values (most of them look like email addresses or phone numbers), whatever its
cardinality; a single value that looks like an email address or a phone number is never kept
anywhere, whichever column it is in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

REDACTED = "<personal data>"
PII_NAME = re.compile(
    r"e-?mail|phone|mobile|\bcell\b|\bfax\b|whatsapp|linkedin|"
    r"first.?name|last.?name|full.?name|given.?name|family.?name|middle.?name|surname|"
    r"contact.?name|owner|^name$|\bperson\b|address|ip.?addr|birth|\bssn\b|passport",
    re.I,
)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", re.I)
_PHONE_CHARS = re.compile(r"^\+?[\d\s().\-/]+$")
_DATE_LIKE = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$")
_RANGE = re.compile(r"^([1-9]\d*)\s*-\s*([1-9]\d*)$")  # "1001-5000": a band, not a number
# a column is personal when this share of its distinct values looks personal
PERSONAL_VALUE_SHARE = 0.5


def personal_name(column: object) -> bool:
    """A column whose name says it holds personal data."""
    return bool(PII_NAME.search(str(column)))


def looks_personal(value: object) -> bool:
    """An email address or a phone number, as text: 7+ digits after a '+', 8+ digits with
    spaces, dashes or brackets, or 10+ digits alone (shorter plain numbers are counts,
    amounts and codes)."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if "@" in text and _EMAIL.search(text):
        return True
    if not _PHONE_CHARS.match(text) or _DATE_LIKE.match(text):
        return False
    band = _RANGE.match(text)
    if band and int(band[1]) < int(band[2]):
        return False
    digits = sum(ch.isdigit() for ch in text)
    if text.startswith("+"):
        return digits >= 7
    return digits >= (10 if text.isdigit() else 8)


def personal_values(values: Iterable) -> list:
    """The values among `values` that look personal."""
    return [v for v in values if looks_personal(v)]


def personal_column(name: object, values: pd.Series) -> bool:
    """Personal by its name, or because most of its distinct values look personal."""
    if personal_name(name):
        return True
    distinct = pd.unique(values.dropna().astype(str))
    if len(distinct) == 0:
        return False
    sample = distinct[:2000]
    return bool(np.mean([looks_personal(v) for v in sample]) >= PERSONAL_VALUE_SHARE)


def safe_text(values: Iterable, column: object = "") -> list[str]:
    """Values fit to be written down: redacted when the column or the value is personal."""
    column_is_personal = personal_name(column)
    return [
        REDACTED if column_is_personal or looks_personal(v) else ("" if v is None else str(v))
        for v in values
    ]


def scrub_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy without personal data: personal columns dropped, personal-looking values blanked
    (for input examples and anything else that shows raw lead rows)."""
    keep = [c for c in frame.columns if not personal_name(c)]
    out = frame[keep].copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            mask = out[col].map(looks_personal).astype(bool)
            if mask.any():
                out[col] = out[col].astype(object).where(~mask, None)
    return out
