"""Files to tables: delimited text in any common encoding, Parquet, Excel.

The readers know about bytes, encodings, separators and rows, nothing about leads. A text
file is read with every column as text (so `000123` stays `000123`), only empty fields are
missing, and a row that does not split into as many fields as the header has (a separator
inside a value, a line cut short) is set aside with its row number instead of shifting its
values into the wrong columns. A file that is not a table at all (binary data, empty, a
header without rows, an old .xls) stops with one line naming the file and what to do.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from leadml.errors import ContractError

SAMPLE_BYTES = 1 << 16
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
TABLE_SUFFIXES = (*TEXT_SUFFIXES, ".parquet", ".xlsx", ".xlsm")
_SEPARATORS = ",;\t|"
_ENCODINGS = ["cp1252", "latin_1", "cp1250", "iso8859_15", "mac_roman"]
_FORMATS = "Export the table as CSV (UTF-8 is best), Parquet or .xlsx."


@dataclass
class RawTable:
    """A table as read: text columns (or typed, from Parquet), indexed by each row's position
    in its file (0 = first data row), and the rows that could not be split."""

    frame: pd.DataFrame
    bad_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bad_reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "encoding cp1252", "separator ';'"
    sep: str | None = None  # the separator of a text file

    @property
    def rows(self) -> int:
        """Rows read: the good ones and those that could not be split."""
        return len(self.frame) + len(self.bad_rows)


def read_table(path: Path, sep: str | None = None, row_group: int | None = None) -> RawTable:
    """Read one table file; see the module docstring."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ContractError(f"{path}: cannot be read ({exc.strerror}).") from None
    if size == 0:
        raise ContractError(
            f"{path}: the file is empty. Export the leads again, with a header row."
        )
    with open(path, "rb") as fh:
        head = fh.read(SAMPLE_BYTES)
    kind = _kind(path, head)
    if kind == "parquet":
        raw = RawTable(_read_parquet(path, row_group))
    elif kind == "excel":
        raw = RawTable(_read_excel(path))
    else:
        raw = _read_text(path, head, sep)
    if raw.frame.empty and not len(raw.bad_rows):
        raise ContractError(f"{path}: the file has a header but no rows. Export at least one lead.")
    return raw


def read_head(path: Path, sep: str | None = None, rows: int = 50_000) -> pd.DataFrame:
    """About the first `rows` rows of a table file, cheaply (to learn its date order before
    the pieces are read elsewhere)."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(SAMPLE_BYTES)
    if not head:
        return pd.DataFrame()
    kind = _kind(path, head)
    if kind == "parquet":
        import pyarrow.parquet as pq

        batch = next(pq.ParquetFile(path).iter_batches(batch_size=rows), None)
        return pd.DataFrame() if batch is None else batch.to_pandas()
    if kind == "excel":
        return _read_excel(path).head(rows)
    encoding = detect_encoding(path, head)
    sample = head.decode(encoding, errors="ignore")
    sep = sep or sniff_sep(sample)
    header = _header(path, sample, sep)
    import pyarrow.csv as pc

    reader = pc.open_csv(path, **_arrow_options(encoding, sep, len(header), lambda row: "skip"))
    batches, n = [], 0
    for batch in reader:
        batches.append(batch.to_pandas())
        n += len(batches[-1])
        if n >= rows:
            break
    frame = pd.concat(batches, ignore_index=True) if batches else pd.DataFrame()
    if len(frame.columns) == len(header):
        frame.columns = header
    return frame


def _kind(path: Path, head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        return "excel"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise ContractError(
            f"{path}: an old Excel (.xls) workbook, which leadml does not read. Save it as "
            ".xlsx or CSV (UTF-8)."
        )
    if path.suffix.lower() == ".parquet":
        raise ContractError(f"{path}: not a Parquet file (no Parquet header). {_FORMATS}")
    return "text"


def _read_parquet(path: Path, row_group: int | None) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if row_group is None:
            return pd.read_parquet(path)
        return pq.ParquetFile(path).read_row_group(row_group).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise ContractError(
            f"{path}: cannot be read as Parquet ({type(exc).__name__}: {str(exc)[:200]}). "
            "Write the file again, or export it as CSV."
        ) from None


def _read_excel(path: Path) -> pd.DataFrame:
    """The first sheet of an .xlsx workbook, every cell as text (dates as ISO text)."""
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        raise ContractError(
            f"{path}: an Excel workbook; install openpyxl to read it, or save it as CSV."
        ) from None
    try:
        sheets = pd.read_excel(path, sheet_name=None, dtype=str, engine="openpyxl")
    except Exception as exc:  # openpyxl raises many kinds for a damaged workbook
        raise ContractError(
            f"{path}: cannot be read as an Excel workbook ({type(exc).__name__}). {_FORMATS}"
        ) from None
    if not sheets:
        raise ContractError(f"{path}: the workbook has no sheets. {_FORMATS}")
    frame = next(iter(sheets.values()))
    frame.columns = [str(c).strip() for c in frame.columns]
    empty = [c for c in frame.columns if c.startswith("Unnamed:") and frame[c].isna().all()]
    return frame.drop(columns=empty).reset_index(drop=True)


# ---- delimited text -----------------------------------------------------------------------


def detect_encoding(path: Path, head: bytes) -> str:
    """The text encoding of a file from its first bytes: a byte-order mark, UTF-16 without
    one, valid UTF-8, else the likeliest single-byte Western or Central European encoding
    (charset-normalizer). Binary data is refused."""
    boms = [
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ]
    for bom, name in boms:
        if head.startswith(bom):
            return name
    if b"\x00" in head:
        even, odd = head[0::2], head[1::2]
        if odd.count(0) > 0.3 * len(odd) and even.count(0) < 0.05 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.3 * len(even) and odd.count(0) < 0.05 * len(odd):
            return "utf-16-be"
        at = head.index(b"\x00")
        raise ContractError(f"{path}: not a text table (binary data at byte {at}). {_FORMATS}")
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3 and len(head) == SAMPLE_BYTES:
            return "utf-8"  # a character cut by the end of the sample
    from charset_normalizer import from_bytes

    matches = from_bytes(head, cp_isolation=_ENCODINGS)
    best = matches.best()
    if best is None:
        return "cp1252"
    # among encodings that read the sample equally well, the commonest (Windows-1252) wins:
    # a short sample rarely tells cp1252's ã from cp1250's ă
    tied = {m.encoding for m in matches if m.chaos <= best.chaos and m.coherence >= best.coherence}
    return next((e for e in _ENCODINGS if e in tied), best.encoding)


def _control_share(text: str) -> float:
    bad = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\r\n")
    return bad / max(len(text), 1)


def sniff_sep(sample: str) -> str:
    """The delimiter among , ; tab | that splits the first lines most consistently."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=_SEPARATORS).delimiter
    except csv.Error:
        return ","


def _read_text(path: Path, head: bytes, sep: str | None) -> RawTable:
    encoding = detect_encoding(path, head)
    sample = head.decode(encoding, errors="ignore")
    if _control_share(sample) > 0.01:
        raise ContractError(f"{path}: not a text table (control characters). {_FORMATS}")
    if not sample.strip():
        raise ContractError(
            f"{path}: the file is empty. Export the leads again, with a header row."
        )
    sep = sep or sniff_sep(sample)
    header = _header(path, sample, sep)
    notes = [] if encoding in ("utf-8", "utf-8-sig") else [f"encoding {encoding}"]
    try:
        table, skipped = _arrow_csv(path, encoding, sep, len(header))
    except UnicodeDecodeError:
        # UTF-8 at the start, not further on: the whole file is a single-byte encoding
        encoding = "cp1252"
        notes = [f"encoding {encoding} (not UTF-8 after the first {SAMPLE_BYTES:,} bytes)"]
        table, skipped = _arrow_csv(path, encoding, sep, len(header))
    frame = table.to_pandas()
    frame.columns = header
    rows = np.arange(len(frame))
    bad_rows, reasons = np.zeros(0, np.int64), list[str]()
    if skipped:
        bad_rows, reasons = _bad_rows(path, encoding, sep, len(header))
        every = np.arange(len(frame) + len(bad_rows))
        rows = np.setdiff1d(every, bad_rows, assume_unique=True)[: len(frame)]
    frame.index = pd.Index(rows)
    empty = [c for c in frame.columns if c.startswith("Unnamed:") and frame[c].isna().all()]
    frame = frame.drop(columns=empty)
    if sep != ",":
        notes.append(f"separator {sep!r}")
    return RawTable(frame, bad_rows, reasons, notes, sep)


def _header(path: Path, sample: str, sep: str) -> list[str]:
    first = next(csv.reader(io.StringIO(sample.lstrip("\ufeff")), delimiter=sep), [])
    names = [c.strip() or f"Unnamed: {i}" for i, c in enumerate(first)]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ContractError(
                f"{path}: column {name!r} appears twice in the header. Rename one of them."
            )
        seen.add(name)
    if not names:
        raise ContractError(f"{path}: no header row. {_FORMATS}")
    return names


def _arrow_csv(path: Path, encoding: str, sep: str, columns: int):
    """Every column as text with pyarrow's reader; returns (table, rows set aside). Only
    empty fields are missing: placeholders are the contract's business."""
    import pyarrow as pa
    import pyarrow.csv as pc

    skipped = []

    def invalid(row) -> str:
        skipped.append(row.number)
        return "skip"

    try:
        table = pc.read_csv(path, **_arrow_options(encoding, sep, columns, invalid))
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "UTF8" in message or "utf-8" in message.lower():
            raise UnicodeDecodeError("utf-8", b"", 0, 1, message) from None
        raise ContractError(
            f"{path}: cannot be read as delimited text with separator {sep!r} "
            f"({message.splitlines()[0][:200]}). Pass the right separator with --sep."
        ) from None
    return table, len(skipped)


def _arrow_options(encoding: str, sep: str, columns: int, invalid) -> dict:
    import pyarrow as pa
    import pyarrow.csv as pc

    names = [f"c{i}" for i in range(columns)]
    arrow_encoding = "utf8" if encoding in ("utf-8", "utf-8-sig") else encoding
    return {
        "read_options": pc.ReadOptions(
            column_names=names, skip_rows=1, encoding=arrow_encoding, block_size=1 << 24
        ),
        "parse_options": pc.ParseOptions(
            delimiter=sep, newlines_in_values=True, invalid_row_handler=invalid
        ),
        "convert_options": pc.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    }


def _bad_rows(path: Path, encoding: str, sep: str, columns: int) -> tuple[np.ndarray, list[str]]:
    """Rows (0 = first data row) whose field count differs from the header's, and why.

    Only run when the fast reader set rows aside: Python's csv module counts records exactly
    (quoted line breaks included), which the fast reader does not report."""
    rows: list[int] = []
    reasons: list[str] = []
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        records = csv.reader(fh, delimiter=sep)
        next(records, None)
        position = 0
        for record in records:
            if not record:  # a blank line is no row
                continue
            if len(record) != columns:
                rows.append(position)
                hint = (
                    "a separator inside a value?" if len(record) > columns else "a line cut short?"
                )
                reasons.append(f"{len(record)} fields where the header has {columns} ({hint})")
            position += 1
    return np.asarray(rows, dtype=np.int64), reasons
