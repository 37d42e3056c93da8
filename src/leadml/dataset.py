"""Read leads and events, or a flat CRM export, and enforce the input contract.

Two shapes come in:

* CRM tables: a folder holding `leads.csv|parquet` (one row per lead) and
  `events.csv|parquet` (one row per activity).
* A flat export: one file, one row per lead, any columns, a named target column.

A file that breaks the contract as a whole (missing column, empty file, a target that is not
binary, duplicated ids, a date column that mostly does not parse) raises `ContractError`
with the file, the column, example rows and the fix. A bad value in a single row only
removes that row: it goes to the rejects table with its reason, and the good rows go on.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

LEAD_COLUMNS = ["lead_id", "created_at"]
OUTCOME_COLUMNS = ["converted", "converted_at"]
PROFILE_COLUMNS = ["job_title", "company_size", "industry", "country", "lead_source"]
EVENT_COLUMNS = ["lead_id", "occurred_at", "event_type"]
EVENT_TYPES = (
    "page_view", "email_open", "email_click", "content_download", "webinar", "form_submit",
    "demo_request", "trial_start", "cart_add", "unsubscribe", "bounce",
)  # fmt: skip
PAGE_KINDS = ("pricing", "product", "blog", "other")
TRUE_WORDS = {"1", "1.0", "yes", "y", "true", "t", "converted", "won"}
FALSE_WORDS = {"0", "0.0", "no", "n", "false", "f", "not converted", "lost"}
PII_PATTERN = re.compile(
    r"(e-?mail|phone|mobile|first.?name|last.?name|full.?name|^name$|address|ip.?addr)", re.I
)
REDACTED = "<personal data>"
REJECT_COLUMNS = ["file", "row", "lead_id", "field", "value", "reason"]
BINARY = "binary (0/1, yes/no, true/false)"
# more than this share of bad values in a required column is a broken file, not bad rows
MAX_BAD_SHARE = 0.2


class ContractError(ValueError):
    """The input as a whole breaks the contract; the message says what to fix."""


@dataclass
class Rejects:
    """Rows that could not be used, each with the file, row number, field and reason."""

    parts: list[pd.DataFrame] = field(default_factory=list)

    def add(self, file: str, rows: np.ndarray, ids, field_name: str, values, reason: str) -> None:
        if len(rows) == 0:
            return
        if PII_PATTERN.search(field_name):  # the rejects file is logged to MLflow: no personal data
            values = [REDACTED] * len(rows)
        self.parts.append(
            pd.DataFrame(
                {
                    "file": file,
                    "row": np.asarray(rows) + 1,  # 1 = first data row after the header
                    "lead_id": pd.Series(np.asarray(ids, dtype=object)).astype(str).to_numpy(),
                    "field": field_name,
                    "value": pd.Series(np.asarray(values, dtype=object))
                    .astype(str)
                    .str.slice(0, 80)
                    .to_numpy(),
                    "reason": reason,
                }
            )
        )

    def extend(self, other: Rejects) -> None:
        self.parts.extend(other.parts)

    @property
    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in REJECT_COLUMNS})
        f = pd.concat(self.parts, ignore_index=True)
        # files in the order they were read, rows in file order: the same whichever engine
        # (or piece of a file) found them first
        file_order = pd.Series(pd.factorize(f["file"])[0], index=f.index)
        order = np.lexsort((f["row"].to_numpy(), file_order.to_numpy()))
        return f.iloc[order].reset_index(drop=True)

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def summary(self) -> list[str]:
        """One line per (file, reason) with its count: what a person reads first."""
        f = self.frame
        if f.empty:
            return []
        counts = f.groupby(["file", "field", "reason"], sort=False).size()
        return [
            f"{file}: {n} row(s) rejected, {fld}: {reason}"
            for (file, fld, reason), n in counts.items()
        ]


@dataclass
class LeadData:
    """Leads (and events) that passed the contract, plus what was rejected."""

    kind: str  # "crm" or "flat"
    leads: pd.DataFrame
    events: pd.DataFrame | None
    id_column: str
    target: str | None
    date_column: str | None
    rejects: Rejects
    source: dict


def file_hash(paths: list[Path]) -> str:
    """sha256 over the files' bytes, so a run records exactly which data it saw."""
    h = hashlib.sha256()
    for p in sorted(paths):
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def sniff_sep(path: Path) -> str:
    """Guess the delimiter from the first lines among , ; tab |."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        sample = fh.read(65536)
    if not sample.strip():
        raise ContractError(
            f"{path}: the file is empty. Export the leads again, with a header row."
        )
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _read_table(
    path: Path, sep: str | None = None, strings: bool = False, missing=()
) -> pd.DataFrame:
    if path.suffix.lower() == ".parquet":
        frame = pd.read_parquet(path)
    else:
        sep = sep or sniff_sep(path)
        kwargs = {"dtype": str} if strings else {}
        try:
            frame = pd.read_csv(
                path,
                sep=sep,
                na_values=list(missing) or None,
                keep_default_na=True,
                low_memory=False,
                **kwargs,
            )
        except pd.errors.EmptyDataError:
            raise ContractError(
                f"{path}: the file is empty. Export the leads again, with a header row."
            ) from None
        except pd.errors.ParserError as exc:
            raise ContractError(
                f"{path}: cannot be parsed as delimited text with separator {sep!r} ({exc}). Pass the right separator with --sep."
            ) from None
        frame = frame.loc[
            :,
            [
                c
                for c in frame.columns
                if not str(c).startswith("Unnamed:") or frame[c].notna().any()
            ],
        ]
        frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise ContractError(f"{path}: the file has a header but no rows. Export at least one lead.")
    return frame


def _missing_column(
    path: Path, column: str, frame: pd.DataFrame, role: str, flag: str | None = None
) -> ContractError:
    close = difflib.get_close_matches(column, [str(c) for c in frame.columns], n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    fix = f" Pass the right name with {flag}." if flag else f" Rename the column to {column!r}."
    cols = ", ".join(repr(str(c)) for c in list(frame.columns)[:12])
    return ContractError(
        f"{path}: required column {column!r} ({role}) is missing.{hint}{fix} Columns found: {cols}{' ...' if frame.shape[1] > 12 else ''}"
    )


def _examples(
    frame: pd.DataFrame,
    rows: np.ndarray,
    column: str,
    id_col: str | None = None,
    first_row: int = 0,
    k: int = 3,
) -> str:
    def show(col: str, r: int) -> str:
        return REDACTED if PII_PATTERN.search(col) else repr(frame[col].iat[r])

    parts = []
    for r in rows[:k]:
        ident = f" ({id_col}={show(id_col, r)})" if id_col and id_col in frame else ""
        parts.append(f"row {r + first_row + 1}{ident}: {show(column, r)}")
    return "; ".join(parts)


def parse_binary(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Map 0/1, yes/no, true/false (any case) to 1.0/0.0; return (parsed, bad mask). Missing is bad."""
    text = values.astype("string").str.strip().str.lower()
    out = np.full(len(values), np.nan)
    out[text.isin(TRUE_WORDS).fillna(False).to_numpy(bool)] = 1.0
    out[text.isin(FALSE_WORDS).fillna(False).to_numpy(bool)] = 0.0
    return out, np.isnan(out)


def parse_dates(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Parse timestamps (ISO or anything pandas reads); return (parsed, bad mask for non-missing values)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = (
            values.dt.tz_localize(None) if getattr(values.dt, "tz", None) is not None else values
        )
    else:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed").dt.tz_localize(
            None
        )
    parsed = parsed.astype("datetime64[ns]")
    bad = (parsed.isna() & values.notna()).to_numpy(bool).copy()
    return parsed, bad


class _RowCheck:
    """Which rows of one piece of a file are still good; bad ones go to the rejects with
    their reason.

    A column where most values are bad is a broken file, not bad rows: `check` raises a
    ContractError for it instead of rejecting nearly everything. `first_row` is the piece's
    offset in its file, so reject row numbers are the file's.
    """

    def __init__(self, piece: Piece, frame: pd.DataFrame, id_col: str, rejects: Rejects):
        self.piece, self.frame, self.id_col, self.rejects = piece, frame, id_col, rejects
        self.keep = np.ones(len(frame), bool)

    def reject(self, bad: np.ndarray, column: str, reason: str) -> None:
        rows = np.flatnonzero(bad & self.keep)
        f = self.frame
        ids = f[self.id_col].to_numpy()[rows] if self.id_col in f else [""] * len(rows)
        values = f[column].to_numpy()[rows] if column in f else [""] * len(rows)
        self.rejects.add(self.piece.name, rows + self.piece.first_row, ids, column, values, reason)
        self.keep &= ~bad

    def check(self, bad: np.ndarray, column: str, what: str, fix: str, reason: str) -> None:
        if bad.mean() > MAX_BAD_SHARE:
            rows = np.flatnonzero(bad)
            raise ContractError(
                f"{self.piece.path}: column {column!r}: {bad.sum()} of {len(bad)} rows are not {what} "
                f"(e.g. {_examples(self.frame, rows, column, self.id_col, self.piece.first_row)}). {fix}"
            )
        self.reject(bad, column, reason)


def check_unique_ids(
    ids: pd.Series, where: str, id_col: str = "lead_id", rows: bool = True
) -> None:
    """One row per lead: repeated ids are a broken export, not bad rows. With `rows`, the
    ids' index is their position in the file and the message names the rows."""
    dup = ids.duplicated(keep=False).to_numpy(bool)
    if dup.any():
        repeated = ids[dup]
        if PII_PATTERN.search(id_col):  # an email used as the id: name rows, not values
            repeated = repeated.astype(object).where(repeated.isna(), REDACTED)
        if rows:
            shown = "; ".join(f"row {r + 1} ({id_col}={v!r})" for r, v in repeated.iloc[:3].items())
        else:
            shown = ", ".join(repr(v) for v in pd.unique(ids[dup])[:3])
            shown = REDACTED if PII_PATTERN.search(id_col) else shown
        raise ContractError(
            f"{where}: column {id_col!r} must identify one lead per row, but {ids[dup].nunique()} id(s) "
            f"repeat (e.g. {shown}). De-duplicate the export (keep the latest row per lead) "
            f"or name the right id column with --id."
        )


@dataclass(frozen=True)
class Piece:
    """A part of a table that is read and checked on its own: a whole file, or one row group
    of a Parquet file (the Dask engine's unit of work)."""

    path: Path
    name: str  # as the rejects file names it: relative to the data folder
    first_row: int = 0  # position of the piece's first row in its file
    row_group: int | None = None


def table_source(folder: Path, name: str) -> Path:
    """Where one CRM table lives: `name.csv|parquet`, or a folder `name/` (or `name.parquet/`)
    of Parquet parts, as Spark, Dask and most warehouses write them."""
    found = [
        p
        for p in sorted(folder.glob(f"{name}.*")) + sorted(folder.glob(name))
        if (p.is_file() and p.suffix.lower() in (".csv", ".parquet", ".tsv", ".txt"))
        or (p.is_dir() and any(p.glob("*.parquet")))
    ]
    if not found:
        raise ContractError(
            f"{folder}: no {name}.csv, {name}.parquet or {name}/ folder of Parquet parts. A CRM "
            f"folder holds leads and events; for a single flat export pass the file itself to --data."
        )
    if len(found) > 1:
        raise ContractError(
            f"{folder}: several {name} tables ({', '.join(p.name for p in found)}); keep one."
        )
    return found[0]


_table_file = table_source  # the benchmarks' name for it


def pieces(source: Path, split_row_groups: bool = False) -> list[Piece]:
    """The pieces of a table file or folder of Parquet parts, in order.

    With `split_row_groups`, each row group of a Parquet file is its own piece, so a file
    larger than a worker's memory can still be read a piece at a time.
    """
    files = table_files(source)
    base = source.parent
    out = []
    for f in files:
        name = str(f.relative_to(base))
        if split_row_groups and f.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(f).metadata
            first = 0
            for g in range(meta.num_row_groups):
                out.append(Piece(f, name, first, g))
                first += meta.row_group(g).num_rows
        else:
            out.append(Piece(f, name))
    return out


def read_piece(piece: Piece, sep: str | None = None) -> pd.DataFrame:
    """One piece as a frame whose index is the row's position in its file."""
    if piece.row_group is None:
        frame = _read_table(piece.path, sep)
        return frame.reset_index(drop=True)
    import pyarrow.parquet as pq

    frame = pq.ParquetFile(piece.path).read_row_group(piece.row_group).to_pandas()
    frame.index = pd.RangeIndex(piece.first_row, piece.first_row + len(frame))
    return frame


def load_crm(folder: Path, sep: str | None = None, require_outcome: bool = True) -> LeadData:
    """Read `leads` and `events` from a folder and enforce their contract."""
    rejects = Rejects()
    leads_src, events_src = table_source(folder, "leads"), table_source(folder, "events")
    leads = _concat(
        [check_leads(read_piece(p, sep), p, rejects, require_outcome) for p in pieces(leads_src)]
    )
    check_unique_ids(leads["lead_id"], str(leads_src), rows=not leads_src.is_dir())
    ids = pd.Index(leads["lead_id"])
    events = _concat(
        [check_events(read_piece(p, sep), p, ids, rejects) for p in pieces(events_src)]
    )
    return LeadData(
        kind="crm",
        leads=leads,
        events=events,
        id_column="lead_id",
        target="converted" if "converted" in leads else None,
        date_column="created_at",
        rejects=rejects,
        source={
            "paths": [str(leads_src), str(events_src)],
            "hash": file_hash(table_files(leads_src) + table_files(events_src)),
        },
    )


def table_files(source: Path) -> list[Path]:
    """The files of a table: the file itself, or the Parquet parts of its folder."""
    return sorted(source.glob("*.parquet")) if source.is_dir() else [source]


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    # one file keeps each row's position as its index (rejects name it); parts are renumbered
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def check_leads(
    leads: pd.DataFrame, piece: Piece, rejects: Rejects, require_outcome: bool = True
) -> pd.DataFrame:
    """The rows of one piece of the leads table that keep the contract, typed; the rest go to
    `rejects`. Repeated ids are checked over the whole table by `check_unique_ids`."""
    path = piece.path
    for col in LEAD_COLUMNS + (OUTCOME_COLUMNS[:1] if require_outcome else []):
        if col not in leads:
            raise _missing_column(
                path, col, leads, "lead id, creation time and outcome are required"
            )
    rows = _RowCheck(piece, leads, "lead_id", rejects)
    rows.reject(leads["lead_id"].isna().to_numpy(bool), "lead_id", "missing lead id")
    created, bad = parse_dates(leads["created_at"])
    iso = "Export timestamps as ISO 8601 (2026-05-31 14:02:00)."
    rows.check(bad | created.isna().to_numpy(bool), "created_at", "dates", iso, "not a date")
    leads["created_at"] = created
    if "converted" in leads:
        conv, bad = parse_binary(leads["converted"])
        rows.check(
            bad, "converted", BINARY, "Map the outcome to 0/1.", "not 0/1, yes/no or true/false"
        )
        leads["converted"] = conv
        if require_outcome and "converted_at" not in leads:
            why = "needed to know whether a conversion happened after the cut-off"
            raise _missing_column(path, "converted_at", leads, why)
        if "converted_at" in leads:
            conv_at, bad = parse_dates(leads["converted_at"])
            bad |= (conv == 1) & conv_at.isna().to_numpy(bool) & require_outcome
            rows.reject(bad, "converted_at", "converted lead without a valid conversion date")
            leads["converted_at"] = conv_at
    for col in PROFILE_COLUMNS:
        if col not in leads:
            leads[col] = pd.Series(pd.NA, index=leads.index, dtype="string")
    return leads.loc[rows.keep]  # the index keeps each row's position in the file, for rejects


def check_events(
    events: pd.DataFrame, piece: Piece, lead_ids: pd.Index, rejects: Rejects
) -> pd.DataFrame:
    """The events of one piece that keep the contract and belong to a lead in `lead_ids`,
    as (lead_id, occurred_at, event_type, page); the rest go to `rejects`."""
    for col in EVENT_COLUMNS:
        if col not in events:
            raise _missing_column(
                piece.path, col, events, "every event needs a lead id, a time and a type"
            )
    if "page" not in events:
        events["page"] = ""
    rows = _RowCheck(piece, events, "lead_id", rejects)
    when, bad = parse_dates(events["occurred_at"])
    iso = "Export timestamps as ISO 8601."
    rows.check(bad | when.isna().to_numpy(bool), "occurred_at", "dates", iso, "not a date")
    etype = _vocabulary_codes(events["event_type"], EVENT_TYPES)
    rows.reject(
        etype < 0, "event_type", f"unknown event type; expected one of {', '.join(EVENT_TYPES)}"
    )
    owner = lead_ids.get_indexer(events["lead_id"])
    rows.reject(owner < 0, "lead_id", "no lead with this id in leads (or the lead was rejected)")
    keep = rows.keep
    pages = ("", *PAGE_KINDS)
    page = _vocabulary_codes(events["page"].fillna(""), pages)
    # a page view on an unknown page is an "other" page; other events carry no page
    page = np.where(page >= 0, page, np.where(etype == 0, pages.index("other"), 0))
    return pd.DataFrame(
        {
            "lead_id": events["lead_id"].to_numpy()[keep],
            "occurred_at": when.to_numpy()[keep],
            "event_type": pd.Categorical.from_codes(etype[keep], categories=EVENT_TYPES),
            "page": pd.Categorical.from_codes(page[keep], categories=pages),
        }
    )


def _vocabulary_codes(values: pd.Series, vocabulary) -> np.ndarray:
    """Position of each value in `vocabulary` after trimming and lower-casing (-1: not in it).

    The clean-up runs on the distinct values, not on every row: 20M events have a dozen
    event types, and per-row string work was most of the load time and memory.
    """
    cat = values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype("category")
    names = pd.Index(cat.cat.categories.astype(str)).str.strip().str.lower()
    lookup = np.append(pd.Index(vocabulary).get_indexer(names), -1)  # code -1 (missing) -> -1
    return lookup[cat.cat.codes.to_numpy()].astype(np.int64)


def load_flat(
    path: Path,
    target: str | None,
    id_column: str | None = None,
    drop: list[str] | tuple[str, ...] = (),
    sep: str | None = None,
    missing_values: list[str] | tuple[str, ...] = (),
    date_column: str | None = None,
    require_target: bool = True,
) -> LeadData:
    """Read a flat CRM export (one row per lead) as text columns and check id and target."""
    frame = _read_table(path, sep, strings=True, missing=missing_values)
    frame = frame.reset_index(drop=True)
    rejects = Rejects()
    for col in drop:
        if col not in frame:
            raise _missing_column(path, col, frame, "named in --drop", "--drop")
    frame = frame.drop(columns=list(drop))
    if require_target and target is None:
        raise ContractError(
            f"{path}: a flat export needs the outcome column: pass --target COLUMN (0/1, yes/no or true/false)."
        )
    if id_column is not None and id_column not in frame:
        raise _missing_column(path, id_column, frame, "lead id", "--id")
    if id_column is None:
        id_column = "row_id"
        frame.insert(0, id_column, (np.arange(len(frame)) + 1).astype(str))
    rows = _RowCheck(Piece(path, path.name), frame, id_column, rejects)
    rows.reject(frame[id_column].isna().to_numpy(bool), id_column, "missing lead id")
    check_unique_ids(frame[id_column][rows.keep], str(path), id_column)
    if target is not None and target in frame:
        y, bad = parse_binary(frame[target])
        seen = ", ".join(map(repr, frame[target].dropna().astype(str).unique()[:8]))
        fix = f"Values seen: {seen}. Map the outcome to 0/1 or pick the right --target."
        if require_target:
            rows.check(bad, target, BINARY, fix, "target is not 0/1, yes/no or true/false")
        frame[target] = y
    elif require_target and target is not None:
        raise _missing_column(path, target, frame, "the outcome to learn", "--target")
    if date_column is not None:
        if date_column not in frame:
            why = "creation date for the time split"
            raise _missing_column(path, date_column, frame, why, "split.date_column")
        when, bad = parse_dates(frame[date_column])
        fix = "Export dates as ISO 8601 or drop split.date_column."
        rows.check(bad | when.isna().to_numpy(bool), date_column, "dates", fix, "not a date")
        frame[date_column] = when
    keep = rows.keep
    frame = frame.loc[keep]  # the index keeps each row's position in the file, for rejects
    return LeadData(
        kind="flat",
        leads=frame,
        events=None,
        id_column=id_column,
        target=target if target in frame else None,
        date_column=date_column,
        rejects=rejects,
        source={"paths": [str(path)], "hash": file_hash([path]), "rows_read": int(len(keep))},
    )


def load(path: Path | str, **flat_options) -> LeadData:
    """A folder is read as CRM tables, a file as a flat export."""
    path = Path(path)
    if not path.exists():
        raise ContractError(
            f"{path}: no such file or folder. Pass a folder with leads and events, or a flat CSV/Parquet file, to --data."
        )
    if path.is_dir():
        return load_crm(path, flat_options.get("sep"), flat_options.get("require_target", True))
    return load_flat(path, **flat_options)


def pii_columns(columns) -> list[str]:
    """Columns whose name says they hold personal data; never used as features or logged."""
    return [c for c in columns if PII_PATTERN.search(str(c))]


def events_from_records(
    frame: pd.DataFrame, crm: bool
) -> tuple[pd.DataFrame, pd.DataFrame | None, np.ndarray | None]:
    """Split request rows into (leads, events, as_of) for the feature function.

    CRM rows may carry their recent activity in an `events` column: a JSON string or a list of
    {occurred_at, event_type, page} per lead, and a cut-off in `as_of` (now when missing).
    Cheap for one lead as well as for thousands: the service calls it on every request.
    """
    if not crm:
        return frame, None, None
    leads = frame.drop(columns=[c for c in ("events", "as_of") if c in frame]).reset_index(
        drop=True
    )
    if "lead_id" not in leads:
        leads.insert(0, "lead_id", np.arange(1, len(leads) + 1).astype(str))
    for col in PROFILE_COLUMNS + ["created_at"]:
        if col not in leads:
            leads[col] = None
    as_of = as_of_array(frame["as_of"].tolist() if "as_of" in frame else [None] * len(leads))
    per_lead = frame["events"].tolist() if "events" in frame else [[]] * len(leads)
    return leads, events_table(leads["lead_id"].tolist(), per_lead), as_of


def as_of_array(values: list) -> np.ndarray:
    """Cut-offs as datetime64[ns]; now (UTC) where none is given."""
    now = np.datetime64(pd.Timestamp.now(tz="UTC").tz_localize(None).to_datetime64(), "ns")
    given = timestamps(values)
    return np.where(np.isnat(given), now, given)


def events_table(lead_ids: list, per_lead: list) -> pd.DataFrame:
    """Each lead's events (a list of {occurred_at, event_type, page}, or its JSON) as one table."""
    import json

    lists = [
        (json.loads(evs) if evs.strip() else []) if isinstance(evs, str) else evs
        for evs in per_lead
    ]
    lists = [evs if isinstance(evs, list | tuple) else [] for evs in lists]
    owners = np.repeat(np.array(lead_ids, dtype=object), [len(evs) for evs in lists])
    flat = [e for evs in lists for e in evs]
    stamps = [e.get("occurred_at") for e in flat]
    types = [e.get("event_type") for e in flat]
    pages = [e.get("page") for e in flat]
    page_kinds = ("", *PAGE_KINDS)
    return pd.DataFrame(
        {
            "lead_id": owners,
            "occurred_at": timestamps(stamps),
            "event_type": pd.Categorical.from_codes(_code_list(types, EVENT_TYPES), EVENT_TYPES),
            "page": pd.Categorical.from_codes(_code_list(pages, page_kinds), page_kinds),
        }
    )


def timestamps(values: list) -> np.ndarray:
    """datetime64[ns] (naive UTC; NaT where missing or unreadable) from datetimes or text."""
    if len(values) <= 64 and all(v is None or isinstance(v, datetime) for v in values):
        # a request's validated datetimes: skip pandas' fixed cost
        naive = [v.astimezone(UTC).replace(tzinfo=None) if v and v.tzinfo else v for v in values]
        return np.array(naive, dtype="datetime64[ns]")
    stamps = pd.to_datetime(pd.Series(values, dtype=object), errors="coerce", utc=True)
    return stamps.dt.tz_localize(None).to_numpy("datetime64[ns]")


def _code_list(values: list, vocabulary) -> np.ndarray:
    """Position of each value in `vocabulary` (case and spaces ignored); -1 when absent."""
    index = {v: i for i, v in enumerate(vocabulary)}
    codes, uniques = pd.factorize(np.array(values, dtype=object), use_na_sentinel=True)
    lookup = [index.get(u.strip().lower(), -1) if isinstance(u, str) else -1 for u in uniques]
    return np.array([*lookup, -1], dtype=np.int64)[codes]  # code -1 (missing) -> -1


def events_to_records(leads: pd.DataFrame, events: pd.DataFrame | None, as_of) -> pd.DataFrame:
    """The inverse of `events_from_records`: lead rows with an `events` JSON column and `as_of`."""
    import json

    out = leads.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%S")
    grouped: dict = {}
    if events is not None and len(events):
        ev = events.assign(
            occurred_at=pd.to_datetime(events["occurred_at"]).dt.strftime("%Y-%m-%dT%H:%M:%S")
        )
        for lead_id, part in ev.groupby("lead_id", sort=False, observed=True):
            grouped[str(lead_id)] = (
                part[["occurred_at", "event_type", "page"]].astype(str).to_dict("records")
            )
    out["events"] = [json.dumps(grouped.get(str(i), [])) for i in out["lead_id"]]
    out["as_of"] = (
        pd.Timestamp(as_of).strftime("%Y-%m-%dT%H:%M:%S")
        if not isinstance(as_of, np.ndarray | pd.Series)
        else pd.to_datetime(as_of).strftime("%Y-%m-%dT%H:%M:%S")
    )
    return out
