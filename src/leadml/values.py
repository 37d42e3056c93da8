"""Raw values to typed ones, the same way whatever file or request they come from.

* Ids are text: `000123` and `123` are two leads; a Parquet id stored as `100001.0` is
  the lead `100001`.
* Timestamps: ISO 8601, day-first or month-first numeric dates (the order is found from the
  values, or given), epoch numbers (seconds, milliseconds, microseconds or nanoseconds) and
  dates. Everything becomes naive UTC.
* Numbers written with a decimal comma (`1,5`, `1.234,5`) are read as numbers.
* Yes/no words.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadml.errors import ContractError

TRUE_WORDS = {"1", "1.0", "yes", "y", "true", "t", "converted", "won"}
FALSE_WORDS = {"0", "0.0", "no", "n", "false", "f", "not converted", "lost"}
DAY_FIRST, MONTH_FIRST = "day-first", "month-first"
DATE_ORDERS = (DAY_FIRST, MONTH_FIRST)
_NUMERIC_DATE = re.compile(
    r"^\s*(?P<a>\d{1,2})(?P<sep>[/.\-])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})"
    r"(?P<rest>(?:[ T].*)?)$"
)
_YEAR_FIRST = re.compile(
    r"^\s*(?P<y>\d{4})(?P<sep>[/.])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})(?P<rest>(?:[ T].*)?)$"
)
_HAS_YEAR = re.compile(r"\d{4}")


# ---- ids ----------------------------------------------------------------------------------


def id_text(values: pd.Series) -> pd.Series:
    """Lead ids as text, stripped; missing or blank ids are missing.

    Integer columns and integral floats (a Parquet id column with a gap is stored as floats)
    become their integer text, so `100001.0` is the lead `100001`; text stays as it was read.
    """
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype(str)
    if pd.api.types.is_integer_dtype(values.dtype) and not values.hasnans:
        return values.astype(str)
    if pd.api.types.is_integer_dtype(values.dtype):
        text = values.astype("string")
    elif pd.api.types.is_float_dtype(values.dtype):
        v = values.to_numpy(np.float64, na_value=np.nan)
        whole = np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 2**62)
        text = pd.Series(
            np.where(whole, np.where(whole, v, 0).astype(np.int64).astype(str), v.astype(str)),
            index=values.index,
            dtype="string",
        ).where(~np.isnan(v))
    else:
        text = values.map(_one_id, na_action="ignore").astype("string")
    text = text.str.strip()
    return text.where(text.notna() & (text != "")).astype(str)


def _one_id(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


# ---- timestamps ---------------------------------------------------------------------------


class AmbiguousDates(ContractError):
    """Numeric dates where the day and the month are both 12 or less everywhere."""

    def __init__(self, example: str):
        super().__init__(example)
        self.example = example


@dataclass
class ParsedDates:
    stamps: pd.Series  # datetime64[ns], naive UTC; NaT where missing or unreadable
    bad: np.ndarray  # given but not a readable date
    order: str | None  # day-first / month-first when numeric dates were read, else None
    example: str = ""  # a value that decided the order


def date_order(values: pd.Series) -> tuple[str | None, str]:
    """The day/month order of numeric dates among `values`: day-first when some first field
    is over 12, month-first when some second field is; (None, "") when there are none;
    raises AmbiguousDates when every date could be either."""
    text = values.dropna().astype(str)
    parts = text.str.extract(_NUMERIC_DATE)
    hit = parts["a"].notna().to_numpy(bool)
    if not hit.any():
        return None, ""
    text, parts = text[hit], parts[hit]
    a, b = parts["a"].astype(int).to_numpy(), parts["b"].astype(int).to_numpy()
    day_first, month_first = int((a > 12).sum()), int((b > 12).sum())
    if not day_first and not month_first:
        raise AmbiguousDates(str(text.iloc[0]))
    # both kinds present: the commoner order wins, and the others are not dates
    order = DAY_FIRST if day_first >= month_first else MONTH_FIRST
    decided = (a > 12) if order == DAY_FIRST else (b > 12)
    return order, str(text.iloc[int(np.argmax(decided))])


def parse_dates(values: pd.Series, order: str | None = None) -> ParsedDates:
    """Timestamps of any common export format as naive UTC datetime64[ns].

    `order` (day-first or month-first) is used for numeric dates such as 03/04/2026; without
    it the order comes from the values (`date_order`). ISO 8601 is read strictly first, so
    clean files pay nothing for the rest.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz else values
        return ParsedDates(stamps.astype("datetime64[ns]"), np.zeros(len(values), bool), None)
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        stamps = _epoch(values.to_numpy(np.float64, na_value=np.nan), values.index)
        bad = (stamps.isna() & values.notna()).to_numpy(bool)
        return ParsedDates(stamps, bad, None)
    if values.dtype == object:
        first = values.dropna()
        if len(first) and isinstance(first.iloc[0], dt.date):  # Parquet/Excel dates
            stamps = pd.to_datetime(values, errors="coerce", utc=True).dt.tz_localize(None)
            bad = (stamps.isna() & values.notna()).to_numpy(bool)
            return ParsedDates(stamps.astype("datetime64[ns]"), bad, None)
    stamps = pd.to_datetime(values, format="ISO8601", errors="coerce", utc=True)
    failed = (stamps.isna() & values.notna()).to_numpy(bool)
    given = values.notna().to_numpy(bool).copy()
    used, example = None, ""
    if failed.any():
        rest = values[failed].astype("string").str.strip()
        blank = (rest == "").to_numpy(bool)
        given[np.flatnonzero(failed)[blank]] = False  # a blank is missing, not bad
        parsed, used, example = _parse_other(rest[~blank], order)
        stamps = stamps.astype("datetime64[ns, UTC]")
        stamps.loc[parsed.index] = parsed
    stamps = stamps.dt.tz_localize(None).astype("datetime64[ns]")
    bad = stamps.isna().to_numpy(bool) & given
    return ParsedDates(stamps, bad, used, example)


def _parse_other(rest: pd.Series, order: str | None) -> tuple[pd.Series, str | None, str]:
    """The values ISO 8601 did not read: epoch numbers, numeric dates, then anything with a
    four-digit year that dateutil reads (month names)."""
    out = pd.Series(pd.NaT, index=rest.index, dtype="datetime64[ns, UTC]")
    digits = rest.str.fullmatch(r"\d{9,19}").fillna(False).to_numpy(bool)
    if digits.all():  # a column of epoch numbers written as text
        stamps = _epoch(rest.astype(float).to_numpy(), rest.index)
        return stamps.dt.tz_localize("UTC"), None, ""
    example = ""
    if order is None:
        order, example = date_order(rest)
    iso, numeric = _rewrite_numeric(rest, order)
    known = iso.notna().to_numpy(bool)
    if known.any():
        out[known] = pd.to_datetime(iso[known], format="ISO8601", errors="coerce", utc=True)
        retry = known & out.isna().to_numpy(bool)  # "31/12/2025 2:00 PM": ISO date, odd time
        if retry.any():
            out[retry] = pd.to_datetime(iso[retry], format="mixed", errors="coerce", utc=True)
    # numeric dates that do not fit the order stay unreadable; the rest needs a year
    other = ~numeric & rest.str.contains(_HAS_YEAR).fillna(False).to_numpy(bool)
    if other.any():  # "Jan 5, 2026", "5 January 2026 10:00"
        out[other] = pd.to_datetime(
            rest[other], format="mixed", dayfirst=order == DAY_FIRST, errors="coerce", utc=True
        )
    return out, order, example


def _rewrite_numeric(text: pd.Series, order: str | None) -> tuple[pd.Series, np.ndarray]:
    """Numeric dates (dd/mm/yyyy, mm/dd/yyyy, yyyy/mm/dd, with . or - too) as ISO text,
    missing where a value does not fit the order; and which values are numeric dates."""
    out = pd.Series(pd.NA, index=text.index, dtype="string")
    p = text.str.extract(_NUMERIC_DATE)
    hit = p["a"].notna()
    if hit.any() and order is not None:
        a, b = p.loc[hit, "a"].astype(int), p.loc[hit, "b"].astype(int)
        day, month = (a, b) if order == DAY_FIRST else (b, a)
        year = p.loc[hit, "y"].astype(int)
        year = year.where(year >= 100, np.where(year < 69, 2000 + year, 1900 + year))
        ok = (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)
        iso = (
            year.astype(str).str.zfill(4)
            + "-"
            + month.astype(str).str.zfill(2)
            + "-"
            + day.astype(str).str.zfill(2)
            + p.loc[hit, "rest"].fillna("").str.replace("T", " ", n=1)
        )
        out[hit] = iso.where(ok)
    q = text.str.extract(_YEAR_FIRST)
    hit = q["y"].notna()
    if hit.any():
        out[hit] = (
            q.loc[hit, "y"]
            + "-"
            + q.loc[hit, "m"].str.zfill(2)
            + "-"
            + q.loc[hit, "d"].str.zfill(2)
            + q.loc[hit, "rest"].fillna("")
        )
    numeric = (p["a"].notna() | q["y"].notna()).to_numpy(bool)
    return out, numeric


def _epoch(v: np.ndarray, index: pd.Index) -> pd.Series:
    """Epoch numbers to timestamps; the unit follows from the size of the numbers (seconds up
    to 1e11, i.e. the year 5138, then milliseconds, microseconds, nanoseconds)."""
    finite = v[np.isfinite(v)]
    size = np.abs(finite).max() if finite.size else 0.0
    unit = "s" if size < 1e11 else "ms" if size < 1e14 else "us" if size < 1e17 else "ns"
    return pd.Series(pd.to_datetime(v, unit=unit, errors="coerce"), index=index).astype(
        "datetime64[ns]"
    )


def parse_order(text: str | None) -> str | None:
    """A --date-format / input.date_format setting: day-first, month-first (or dmy / mdy),
    or None."""
    if text is None:
        return None
    key = text.strip().lower().replace("_", "-")
    aliases = {
        "dmy": DAY_FIRST,
        "dayfirst": DAY_FIRST,
        "mdy": MONTH_FIRST,
        "monthfirst": MONTH_FIRST,
    }
    key = aliases.get(key.replace("-", ""), key)
    if key not in DATE_ORDERS:
        raise ContractError(
            f"date format {text!r} is not understood: use day-first (31/12/2025) or "
            "month-first (12/31/2025)"
        )
    return key


def timestamp(text: str, what: str) -> pd.Timestamp:
    """One timestamp a person typed (--as-of, label.as_of): ISO 8601 only, so that 03/04
    is never guessed; naive UTC."""
    stamp = pd.to_datetime(pd.Series([text]), format="ISO8601", errors="coerce", utc=True)[0]
    if pd.isna(stamp):
        raise ContractError(
            f"{what} {text!r} is not an ISO 8601 time; write it as 2026-06-30 or 2026-06-30T09:00"
        )
    return stamp.tz_localize(None)


# ---- numbers ------------------------------------------------------------------------------

_COMMA_DECIMAL = re.compile(r"^[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?$")
_DOT_DECIMAL = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")


def decimal_commas(values: pd.Series, sep: str) -> pd.Series | None:
    """A text column of numbers written with a decimal comma (1,5 or 1.234,5), rewritten with
    a decimal point; None when the column is not one.

    A comma followed by other than three digits is a decimal comma. `1,234` alone is
    ambiguous: in a comma-separated file (where the value had to be quoted) it is read as
    a thousands separator, in a ;-, tab- or |-separated file as a decimal comma.
    """
    text = values.dropna().astype(str).str.strip()
    text = text[text != ""]
    if text.empty or not text.str.contains(",", regex=False).any():
        return None
    comma = text.str.match(_COMMA_DECIMAL)
    if comma.mean() < 0.95:
        dot = text.str.match(_DOT_DECIMAL)
        if dot.mean() >= 0.95 and sep == ",":  # quoted 1,234.5: thousands separators
            out = values.astype("string").str.replace(",", "", regex=False)
            return out.where(values.notna())
        return None
    decimals = text[comma].str.extract(r",(\d+)$")[0].dropna()
    if sep == "," and (decimals.str.len() == 3).all() and not text.str.contains(r"\.").any():
        out = values.astype("string").str.replace(",", "", regex=False)  # 1,234 = 1234
        return out.where(values.notna())
    stripped = values.astype("string").str.strip()
    fits = stripped.str.match(_COMMA_DECIMAL).fillna(False)
    rewritten = stripped.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    return rewritten.where(fits, stripped).where(values.notna())


# ---- yes / no -----------------------------------------------------------------------------


def binary_word(text: str) -> bool | None:
    """True or False for a yes/no spelling (any case, spaces around), None for anything else."""
    text = text.strip().lower()
    return True if text in TRUE_WORDS else False if text in FALSE_WORDS else None


def parse_binary(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Map 0/1, yes/no, true/false (any case) to 1.0/0.0; return (parsed, bad mask). Missing is bad."""
    text = values.astype("string").str.strip().str.lower()
    out = np.full(len(values), np.nan)
    out[text.isin(TRUE_WORDS).fillna(False).to_numpy(bool)] = 1.0
    out[text.isin(FALSE_WORDS).fillna(False).to_numpy(bool)] = 0.0
    return out, np.isnan(out)


def utc_now() -> pd.Timestamp:
    """The wall clock as naive UTC, the time zone every timestamp is kept in."""
    return pd.Timestamp(dt.datetime.now(dt.UTC).replace(tzinfo=None))


class DateOrders:
    """The day/month order numeric dates are read in: as configured (`date_format`), else as
    each column's own values show, else as another date column of the same export shows."""

    def __init__(self, date_format: str | None):
        self.explicit = parse_order(date_format)
        self.seen: dict[str, tuple[str, str]] = {}  # "file: column" -> (order, example)

    def sample(self, where: str, values: pd.Series) -> None:
        """Learn the order from the first values of a column, before any piece is parsed."""
        text = values.dtype == object or pd.api.types.is_string_dtype(values.dtype)
        if self.explicit is None and text:
            head = values.head(50_000)
            iso = pd.to_datetime(head, format="ISO8601", errors="coerce", utc=True)
            try:
                order, example = date_order(head[iso.isna().to_numpy(bool)])
            except AmbiguousDates:
                return
            if order is not None:
                self.seen.setdefault(where, (order, example))

    @property
    def fallback(self) -> str | None:
        return self.explicit or next((o for o, _ in self.seen.values()), None)

    def parse(self, values: pd.Series, where: str) -> ParsedDates:
        try:
            parsed = parse_dates(values, self.explicit)
        except AmbiguousDates as exc:
            if self.fallback is None:
                raise ContractError(
                    f"{where}: dates such as {exc.example!r} could be day-first or month-first, "
                    "and no value says which. Pass --date-format day-first (31/12/2025) or "
                    "--date-format month-first (12/31/2025), or set input.date_format."
                ) from None
            parsed = parse_dates(values, self.fallback)
            parsed.example = "as in the other date columns"
        if parsed.order is not None:
            example = "as configured" if self.explicit else parsed.example
            self.seen.setdefault(where, (parsed.order, example))
        return parsed

    def notes(self) -> list[str]:
        return [
            f"{where}: numeric dates read {order} ({example})"
            for where, (order, example) in self.seen.items()
        ]
