"""Files to tables: encodings, separators, rows that do not split, files that are no table."""

from __future__ import annotations

import pytest

from leadml import readers
from leadml.errors import ContractError

ROWS = (
    'id;name;x\n000123;Zoë;1,5\n123;Bob;2\n7;too;many;fields\n8;short\n"9";"two\nlines";3\n10;e;4\n'
)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "utf-16", "utf-16-le"])
def test_text_in_any_common_encoding_reads_the_same(tmp_path, encoding):
    path = tmp_path / "t.csv"
    path.write_bytes(ROWS.encode(encoding))
    raw = readers.read_table(path)
    assert list(raw.frame.columns) == ["id", "name", "x"] and raw.sep == ";"
    assert raw.frame["id"].tolist() == ["000123", "123", "9", "10"]  # text, as written
    assert raw.frame["name"].tolist()[:3] == ["Zoë", "Bob", "two\nlines"]
    # rows that do not split are set aside with their row number; the others keep theirs
    assert raw.frame.index.tolist() == [0, 1, 4, 5] and raw.bad_rows.tolist() == [2, 3]
    assert "4 fields where the header has 3" in raw.bad_reasons[0] and raw.rows == 6


def test_a_file_that_turns_out_not_to_be_utf8_is_reread(tmp_path):
    path = tmp_path / "late.csv"
    body = "id,city\n" + "".join(f"{i},Paris\n" for i in range(20_000)) + "99,Zürich\n"
    path.write_bytes(body.encode("cp1252"))
    raw = readers.read_table(path)
    assert raw.frame["city"].iloc[-1] == "Zürich" and "encoding cp1252" in raw.notes[0]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bin.csv", b"\x00\x01\x02binary\xff\x00" * 100, "not a text table"),
        ("empty.csv", b"", "the file is empty"),
        ("blank.csv", b"\n\n  \n", "the file is empty"),
        ("header.csv", b"a,b,c\n", "header but no rows"),
        ("twice.csv", b"a,a\n1,2\n", "appears twice"),
        ("old.xls", b"\xd0\xcf\x11\xe0" + b"\x00" * 100, "old Excel"),
        ("fake.parquet", b"not parquet", "not a Parquet file"),
    ],
)
def test_files_that_are_no_table_are_refused_with_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ContractError, match=message) as err:
        readers.read_table(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_excel_is_read_as_text(tmp_path):
    import pandas as pd

    pd.DataFrame({"id": ["007", "8"], "when": [pd.Timestamp("2026-01-02 10:00")] * 2}).to_excel(
        tmp_path / "x.xlsx", index=False
    )
    raw = readers.read_table(tmp_path / "x.xlsx")
    assert raw.frame["id"].tolist() == ["007", "8"]
    assert raw.frame["when"].iloc[0].startswith("2026-01-02 10:00")


def test_windows_1252_wins_a_tie_with_other_single_byte_encodings(tmp_path):
    path = tmp_path / "br.csv"
    path.write_bytes("id,city\n1,São Paulo\n2,Köln\n".encode("cp1252"))
    assert readers.read_table(path).frame["city"].tolist() == ["São Paulo", "Köln"]
