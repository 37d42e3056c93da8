"""Read leads and events, or a flat CRM export, and enforce the input contract.

Two shapes come in:

* CRM tables: a folder holding `leads` (one row per lead) and `events` (one row per
  activity), each a CSV/Parquet/.xlsx file or a folder of Parquet parts.
* A flat export: one file, one row per lead, any columns, a named target column.

Nothing is lost: every row read ends up used or in the rejects with its table, file, row,
lead id, field and reason (never the row's values: they may be personal data), and the
counts per table are reported. A file that breaks the contract as a whole (missing column,
empty file, a target that is not binary, ambiguous dates) raises `ContractError` with the
file, the column and the fix; so does a table with more rejected rows than
`max_reject_share` allows: a file that is mostly garbage is not scored as if it were fine.

Longer than our ~400-line rule on purpose: the checks of both input shapes (CRM tables and
flat exports) share one row checker, one missing-word rule, one id and date reading, so that
a rule is written once for both. The pieces of a table are read by `readers`, the rows set
aside are kept by `accounting`, the columns are declared in `contract`.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from leadml import privacy, readers
from leadml.accounting import (
    DUPLICATE_ID,
    FUTURE,
    LEAD_REJECTED,
    NO_LEAD,
    Rejects,
    TableCount,
    TooManyRejects,
)
from leadml.contract import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    LEAD_COLUMNS,
    OUTCOME_COLUMNS,
    PAGE_KINDS,
    PROFILE_COLUMNS,
)
from leadml.errors import ContractError
from leadml.values import (
    DateOrders,
    decimal_commas,
    id_text,
    parse_binary,
    utc_now,
)

__all__ = ["ContractError"]  # raised by the readers of every engine; defined in errors

BINARY = "binary (0/1, yes/no, true/false)"
MAX_REJECT_SHARE = 0.05
# read as missing in text columns, besides empty fields (pandas' defaults)
NA_WORDS = (
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)


@dataclass(frozen=True)
class ReadOptions:
    """How input files are read; the same for training, scoring and every engine.

    `date_format`: day-first or month-first, for numeric dates whose order the values do not
    reveal. `now`: rows later than this are rejected as in the future (default: the time of
    the run). `missing_values`: placeholders read as missing, besides empty fields.
    """

    sep: str | None = None
    date_format: str | None = None
    max_reject_share: float = MAX_REJECT_SHARE
    missing_values: tuple[str, ...] = ()
    now: pd.Timestamp | None = None

    def clock(self) -> np.datetime64:
        now = self.now if self.now is not None else utc_now()
        return np.datetime64(pd.Timestamp(now).to_datetime64(), "ns")


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
    read: dict[str, int] = field(default_factory=dict)  # rows read per table
    notes: list[str] = field(default_factory=list)  # how the files were read

    def counts(self) -> dict[str, TableCount]:
        return self.rejects.counts(self.read)

    def check_reject_share(self, limit: float) -> dict[str, TableCount]:
        """Rows read / used / rejected per table; stops (TooManyRejects: one line, the
        commonest reason and what to do) when a table has more rejected rows than `limit`
        allows."""
        counts = self.counts()
        files = dict(zip(("leads", "events"), self.source["paths"], strict=False))
        for table, c in counts.items():
            if c.read and c.share > limit:
                reason, n = next(iter(c.rejected.items()))
                raise TooManyRejects(
                    f"{files.get(table, table)}: {c.rejected_rows:,} of {c.read:,} {table} rows "
                    f"rejected ({c.share:.1%}, over the {limit:.0%} limit); commonest reason: "
                    f"{reason} ({n:,} rows). Fix the export, or raise the limit with "
                    f"--max-reject-share (input.max_reject_share in the config).",
                    self.rejects.frame,
                )
        return counts


def file_hash(paths: list[Path]) -> str:
    """sha256 over the files' bytes, so a run records exactly which data it saw."""
    h = hashlib.sha256()
    for p in sorted(paths):
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


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
    frame: pd.DataFrame, rows: np.ndarray, column: str, id_col: str | None = None, k: int = 3
) -> str:
    """A few rows of one column, as a person finds them in the file (row 1 = first data row);
    values that are personal data are redacted."""

    def show(col: str, r: int) -> str:
        value = frame[col].iat[r]
        return repr(privacy.safe_text([value], col)[0]) if pd.notna(value) else "(empty)"

    parts = []
    for r in rows[:k]:
        ident = f" ({id_col}={show(id_col, r)})" if id_col and id_col in frame else ""
        parts.append(f"row {frame.index[r] + 1}{ident}: {show(column, r)}")
    return "; ".join(parts)


# ---- reading a table's pieces -------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """A part of a table that is read and checked on its own: a whole file, or one row group
    of a Parquet file (the Dask engine's unit of work)."""

    path: Path
    name: str  # as the rejects file names it: relative to the data folder
    first_row: int = 0  # position of the piece's first row in its file
    row_group: int | None = None


def table_source(folder: Path, name: str) -> Path:
    """Where one CRM table lives: `name.csv|tsv|txt|parquet|xlsx`, or a folder `name/` (or
    `name.parquet/`) of Parquet parts, as Spark, Dask and most warehouses write them."""
    found = [
        p
        for p in sorted(folder.glob(f"{name}.*")) + sorted(folder.glob(name))
        if (p.is_file() and p.suffix.lower() in readers.TABLE_SUFFIXES)
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


def table_files(source: Path) -> list[Path]:
    """The files of a table: the file itself, or the Parquet parts of its folder."""
    return sorted(source.glob("*.parquet")) if source.is_dir() else [source]


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


def read_piece(piece: Piece, sep: str | None = None) -> readers.RawTable:
    """One piece as read, its frame indexed by each row's position in its file."""
    raw = readers.read_table(piece.path, sep, piece.row_group)
    if piece.row_group is not None:
        raw.frame.index = pd.RangeIndex(piece.first_row, piece.first_row + len(raw.frame))
    return raw


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    # one file keeps each row's position as its index (rejects name it); parts are renumbered
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _missing_words(frame: pd.DataFrame, columns, words) -> None:
    """Placeholders ('N/A', 'Select', ...) in text columns read as missing, in place."""
    for col in columns:
        values = frame[col]
        if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            frame[col] = values.where(~values.isin(words))


class _RowCheck:
    """Which rows of one piece of a table are still good; bad ones go to the rejects with
    their reason.

    A column with more bad values than the reject limit is a broken file, not bad rows:
    `check` raises a ContractError naming it, with examples, instead of rejecting them.
    """

    def __init__(
        self,
        table: str,
        piece: Piece,
        raw: readers.RawTable,
        id_col: str,
        rejects: Rejects,
        limit: float,
        ids: np.ndarray | None = None,
    ):
        self.table, self.piece, self.frame = table, piece, raw.frame
        self.id_col, self.rejects, self.limit = id_col, rejects, limit
        self.ids = ids  # the rows' ids as text, when the frame's column is not (yet)
        self.keep = np.ones(len(raw.frame), bool)
        for reason in dict.fromkeys(raw.bad_reasons):  # rows that did not split into fields
            rows = raw.bad_rows[[r == reason for r in raw.bad_reasons]]
            rejects.add(table, piece.name, rows, [""] * len(rows), "(whole row)", reason)

    def reject(self, bad: np.ndarray, column: str, reason: str) -> None:
        rows = np.flatnonzero(bad & self.keep)
        if len(rows):
            f = self.frame
            ids: np.ndarray | list[str]
            if self.ids is not None:
                ids = self.ids[rows]
            else:
                ids = f[self.id_col].to_numpy()[rows] if self.id_col in f else [""] * len(rows)
            self.rejects.add(
                self.table,
                self.piece.name,
                f.index.to_numpy()[rows],
                ids,
                column,
                reason,
                self.id_col,
            )
            self.keep &= ~bad

    def check(self, bad: np.ndarray, column: str, what: str, fix: str, reason: str) -> None:
        if len(bad) and bad.mean() > self.limit:
            rows = np.flatnonzero(bad)
            raise ContractError(
                f"{self.piece.path}: column {column!r}: {bad.sum():,} of {len(bad):,} rows "
                f"({bad.mean():.1%}) are not {what}, over the {self.limit:.0%} reject limit "
                f"(e.g. {_examples(self.frame, rows, column, self.id_col)}). {fix}"
            )
        self.reject(bad, column, reason)

    def future(self, stamps: pd.Series, column: str, now: np.datetime64) -> None:
        self.reject((stamps.to_numpy("datetime64[ns]") > now), column, FUTURE)


def _id_rows(
    table: str,
    piece: Piece,
    raw: readers.RawTable,
    rejects: Rejects,
    options: ReadOptions,
    needed,
    why: str,
) -> _RowCheck:
    """The start of every per-lead table's check: the columns it needs (else one error
    naming the missing one), ids as text, rows without an id rejected."""
    frame = raw.frame
    for col in needed:
        if col not in frame:
            raise _missing_column(piece.path, col, frame, why)
    rows = _RowCheck(table, piece, raw, "lead_id", rejects, options.max_reject_share)
    frame["lead_id"] = id_text(frame["lead_id"])
    rows.reject(frame["lead_id"].isna().to_numpy(bool), "lead_id", "missing lead id")
    return rows


def check_leads(
    raw: readers.RawTable,
    piece: Piece,
    rejects: Rejects,
    options: ReadOptions,
    dates: DateOrders,
    require_outcome: bool = True,
) -> pd.DataFrame:
    """The rows of one piece of the leads table that keep the contract, typed; the rest go to
    `rejects`. Repeated ids are found over the whole table by `drop_duplicate_ids`."""
    leads, path = raw.frame, piece.path
    needed = LEAD_COLUMNS + (OUTCOME_COLUMNS[:1] if require_outcome else [])
    why = "lead id, creation time and outcome are required"
    rows = _id_rows("leads", piece, raw, rejects, options, needed, why)
    _missing_words(
        leads, [c for c in PROFILE_COLUMNS if c in leads], (*NA_WORDS, *options.missing_values)
    )
    now = options.clock()
    created = dates.parse(leads["created_at"], f"{piece.name}: created_at")
    iso = "Export timestamps as ISO 8601 (2026-05-31 14:02:00)."
    bad = created.bad | created.stamps.isna().to_numpy(bool)
    rows.check(bad, "created_at", "dates", iso, "not a date")
    rows.future(created.stamps, "created_at", now)
    leads["created_at"] = created.stamps
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
            conv_at = dates.parse(leads["converted_at"], f"{piece.name}: converted_at")
            bad = conv_at.bad | (
                (conv == 1) & conv_at.stamps.isna().to_numpy(bool) & require_outcome
            )
            rows.reject(bad, "converted_at", "converted lead without a valid conversion date")
            rows.future(conv_at.stamps, "converted_at", now)
            leads["converted_at"] = conv_at.stamps
    for col in PROFILE_COLUMNS:
        if col not in leads:
            leads[col] = pd.Series(pd.NA, index=leads.index, dtype="string")
    return leads.loc[rows.keep]  # the index keeps each row's position in the file, for rejects


def drop_duplicate_ids(
    parts: list[tuple[Piece, pd.DataFrame]],
    rejects: Rejects,
    id_col: str = "lead_id",
    table: str = "leads",
) -> list[pd.DataFrame]:
    """One row per lead: of rows sharing an id, the first in file order is used and the rest
    are rejected as duplicates."""
    if not parts:
        return []
    ids = pd.concat([f[id_col] for _, f in parts], ignore_index=True)
    dup = ids.duplicated(keep="first").to_numpy(bool)
    out, start = [], 0
    for piece, frame in parts:
        mine = dup[start : start + len(frame)]
        start += len(frame)
        if mine.any():
            rejects.add(
                table,
                piece.name,
                frame.index.to_numpy()[mine],
                frame[id_col].to_numpy()[mine],
                id_col,
                DUPLICATE_ID,
                id_col,
            )
        out.append(frame.loc[~mine] if mine.any() else frame)
    return out


def check_events(
    raw: readers.RawTable,
    piece: Piece,
    lead_ids: pd.Index,
    rejects: Rejects,
    options: ReadOptions,
    dates: DateOrders,
    rejected_ids: frozenset = frozenset(),
    categorical: bool = True,
) -> pd.DataFrame:
    """The events of one piece that keep the contract and belong to a lead in `lead_ids`
    (unique), as (lead_id, occurred_at, event_type, page); the rest go to `rejects`.

    `rejected_ids`: ids of leads that were rejected, so their events say so rather than
    "no lead with this id". With `categorical`, `lead_id` is a Categorical over `lead_ids`:
    matching events to leads then hashes each lead once, not each event (3 s -> 0.4 s for
    6M events), and takes 4 bytes an event.
    """
    events = raw.frame
    for col in EVENT_COLUMNS:
        if col not in events:
            raise _missing_column(
                piece.path, col, events, "every event needs a lead id, a time and a type"
            )
    if "page" not in events:
        events["page"] = ""
    # ids as text, worked out once per distinct id
    codes, uniques = pd.factorize(events["lead_id"], use_na_sentinel=True)
    text = id_text(pd.Series(uniques)).to_numpy(object)
    owner = np.append(lead_ids.get_indexer(text), -1)[codes]
    row_ids = np.append(text, np.array([None], dtype=object))[codes]
    rows = _RowCheck("events", piece, raw, "lead_id", rejects, options.max_reject_share, row_ids)
    when = dates.parse(events["occurred_at"], f"{piece.name}: occurred_at")
    iso = "Export timestamps as ISO 8601."
    rows.check(
        when.bad | when.stamps.isna().to_numpy(bool), "occurred_at", "dates", iso, "not a date"
    )
    rows.future(when.stamps, "occurred_at", options.clock())
    etype = _vocabulary_codes(events["event_type"], EVENT_TYPES)
    rows.reject(
        etype < 0, "event_type", f"unknown event type; expected one of {', '.join(EVENT_TYPES)}"
    )
    unknown = owner < 0
    if rejected_ids and unknown.any():
        theirs = unknown & pd.Series(row_ids).isin(rejected_ids).to_numpy(bool)
        rows.reject(theirs, "lead_id", LEAD_REJECTED)
    rows.reject(unknown, "lead_id", NO_LEAD)
    keep = rows.keep
    pages = ("", *PAGE_KINDS)
    page = _vocabulary_codes(events["page"].fillna(""), pages)
    # a page view on an unknown page is an "other" page; other events carry no page
    page = np.where(page >= 0, page, np.where(etype == 0, pages.index("other"), 0))
    ids = (
        pd.Categorical.from_codes(owner[keep], categories=lead_ids)
        if categorical
        else lead_ids.to_numpy(object)[owner[keep]]
    )
    return pd.DataFrame(
        {
            "lead_id": ids,
            "occurred_at": when.stamps.to_numpy()[keep],
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


def sample_date_orders(dates: DateOrders, tables: dict[str, pd.DataFrame]) -> None:
    """Learn the day/month order from the first rows of each table's date columns."""
    for name, frame in tables.items():
        for col in ("created_at", "converted_at", "occurred_at"):
            if col in frame:
                dates.sample(f"{name}: {col}", frame[col])


def load_crm(
    folder: Path, options: ReadOptions | None = None, require_outcome: bool = True
) -> LeadData:
    """Read `leads` and `events` from a folder and enforce their contract."""
    options = options or ReadOptions()
    rejects, dates = Rejects(), DateOrders(options.date_format)
    leads_src, events_src = table_source(folder, "leads"), table_source(folder, "events")
    lead_pieces, event_pieces = pieces(leads_src), pieces(events_src)
    first_leads = read_piece(lead_pieces[0], options.sep)
    first_events = read_piece(event_pieces[0], options.sep)
    sample_date_orders(
        dates, {lead_pieces[0].name: first_leads.frame, event_pieces[0].name: first_events.frame}
    )
    read = {"leads": 0, "events": 0}
    notes: list[str] = []
    parts = []
    for i, piece in enumerate(lead_pieces):
        raw = first_leads if i == 0 else read_piece(piece, options.sep)
        read["leads"] += raw.rows
        notes += [f"{piece.name}: {n}" for n in raw.notes]
        parts.append((piece, check_leads(raw, piece, rejects, options, dates, require_outcome)))
    leads = _concat(drop_duplicate_ids(parts, rejects))
    ids = pd.Index(leads["lead_id"])
    rejected_ids = frozenset(rejects.ids("leads") - set(ids))
    events = []
    for i, piece in enumerate(event_pieces):
        raw = first_events if i == 0 else read_piece(piece, options.sep)
        read["events"] += raw.rows
        notes += [f"{piece.name}: {n}" for n in raw.notes]
        events.append(check_events(raw, piece, ids, rejects, options, dates, rejected_ids))
    return LeadData(
        kind="crm",
        leads=leads,
        events=_concat(events),
        id_column="lead_id",
        target="converted" if "converted" in leads else None,
        date_column="created_at",
        rejects=rejects,
        source={
            "paths": [str(leads_src), str(events_src)],
            "hash": file_hash(table_files(leads_src) + table_files(events_src)),
        },
        read=read,
        notes=notes + dates.notes(),
    )


def load_flat(
    path: Path,
    target: str | None,
    id_column: str | None = None,
    drop: list[str] | tuple[str, ...] = (),
    options: ReadOptions | None = None,
    date_column: str | None = None,
    require_target: bool = True,
) -> LeadData:
    """Read a flat CRM export (one row per lead) as text columns and check id and target."""
    options = options or ReadOptions()
    piece = Piece(path, path.name)
    raw = readers.read_table(path, options.sep)
    frame = raw.frame
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
    notes = [f"{path.name}: {n}" for n in raw.notes]
    if id_column is None:
        id_column = "row_id"
        frame.insert(0, id_column, (frame.index.to_numpy() + 1).astype(str))
    else:
        frame[id_column] = id_text(frame[id_column])
    others = [c for c in frame.columns if c != id_column]
    _missing_words(frame, others, (*NA_WORDS, *options.missing_values))
    for col in others:
        if col not in (target, date_column):
            fixed = decimal_commas(frame[col], raw.sep or ",")
            if fixed is not None and not frame[col].equals(fixed):
                frame[col] = fixed
                notes.append(f"{path.name}: {col!r} read with a decimal comma")
    raw.frame = frame
    rows = _RowCheck("leads", piece, raw, id_column, rejects, options.max_reject_share)
    rows.reject(frame[id_column].isna().to_numpy(bool), id_column, "missing lead id")
    if target is not None and target in frame:
        y, bad = parse_binary(frame[target])
        seen = ", ".join(
            map(repr, privacy.safe_text(frame[target].dropna().astype(str).unique()[:8]))
        )
        fix = f"Values seen: {seen}. Map the outcome to 0/1 or pick the right --target."
        if require_target:
            rows.check(bad, target, BINARY, fix, "target is not 0/1, yes/no or true/false")
        frame[target] = y
    elif require_target and target is not None:
        raise _missing_column(path, target, frame, "the outcome to learn", "--target")
    dates = DateOrders(options.date_format)
    if date_column is not None:
        if date_column not in frame:
            why = "creation date for the time split"
            raise _missing_column(path, date_column, frame, why, "split.date_column")
        when = dates.parse(frame[date_column], f"{path.name}: {date_column}")
        fix = "Export dates as ISO 8601 or drop split.date_column."
        rows.check(
            when.bad | when.stamps.isna().to_numpy(bool), date_column, "dates", fix, "not a date"
        )
        rows.future(when.stamps, date_column, options.clock())
        frame[date_column] = when.stamps
    (frame,) = drop_duplicate_ids([(piece, frame.loc[rows.keep])], rejects, id_column)
    return LeadData(
        kind="flat",
        leads=frame,  # the index keeps each row's position in the file, for rejects
        events=None,
        id_column=id_column,
        target=target if target in frame else None,
        date_column=date_column,
        rejects=rejects,
        source={"paths": [str(path)], "hash": file_hash([path]), "rows_read": raw.rows},
        read={"leads": raw.rows},
        notes=notes + dates.notes(),
    )


def load_outcomes(path: Path, options: ReadOptions | None = None) -> LeadData:
    """An outcomes file (`leadml monitor --outcomes`): lead_id, converted (0/1, yes/no,
    true/false) and converted_at, one row per lead. Rows that break it go to the rejects:
    a missing id, an unreadable outcome, a conversion without its date (the monitor cannot
    tell whether it fell within the horizon), a repeated id."""
    options = options or ReadOptions()
    path = require_input(path)
    rejects, dates = Rejects(), DateOrders(options.date_format)
    piece = pieces(path)[0]
    raw = read_piece(piece, options.sep)
    frame = raw.frame
    needed = ("lead_id", "converted", "converted_at")
    why = "an outcomes file has lead_id, converted and converted_at"
    rows = _id_rows("outcomes", piece, raw, rejects, options, needed, why)
    conv, bad = parse_binary(frame["converted"])
    rows.check(bad, "converted", BINARY, "Map the outcome to 0/1.", "not 0/1, yes/no or true/false")
    when = dates.parse(frame["converted_at"], f"{piece.name}: converted_at")
    no_date = (conv == 1) & when.stamps.isna().to_numpy(bool)
    rows.reject(
        when.bad | no_date, "converted_at", "converted lead without a valid conversion date"
    )
    rows.future(when.stamps, "converted_at", options.clock())
    out = pd.DataFrame(
        {"lead_id": frame["lead_id"], "converted": conv, "converted_at": when.stamps},
        index=frame.index,
    ).loc[rows.keep]
    (out,) = drop_duplicate_ids([(piece, out)], rejects, table="outcomes")
    return LeadData(
        kind="outcomes",
        leads=out,
        events=None,
        id_column="lead_id",
        target="converted",
        date_column=None,
        rejects=rejects,
        source={"paths": [str(path)], "hash": file_hash([path])},
        read={"outcomes": raw.rows},
        notes=[f"{piece.name}: {n}" for n in raw.notes] + dates.notes(),
    )


def require_input(path: Path | str) -> Path:
    """`path` when it exists; else the one-line error every command gives for a missing --data."""
    path = Path(path)
    if not path.exists():
        raise ContractError(
            f"{path}: no such file or folder. Pass a folder with leads and events, or a flat "
            "CSV/Parquet file, to --data."
        )
    return path


def load(path: Path | str, options: ReadOptions | None = None, **flat_options) -> LeadData:
    """A folder is read as CRM tables, a file as a flat export."""
    path = require_input(path)
    if path.is_dir():
        return load_crm(path, options, flat_options.get("require_target", True))
    return load_flat(path, options=options, **flat_options)


def pii_columns(columns) -> list[str]:
    """Columns whose name says they hold personal data; never used as features or logged."""
    return [c for c in columns if privacy.personal_name(c)]
