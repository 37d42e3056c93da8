"""Every input row accounted for: used, or set aside with its reason, and counted.

`Rejects` collects the rows that could not be used (table, file, row, lead id, field, reason;
never a row's values, which may be personal data). `TableCount` is one table's rows read =
used + rejected, as every command reports them; `TooManyRejects` stops a run whose table is
mostly garbage (`dataset.LeadData.check_reject_share`). Every engine and the feature function write to the same `Rejects`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leadml import privacy
from leadml.errors import ContractError

REDACTED = privacy.REDACTED
REJECT_COLUMNS = ["table", "file", "row", "lead_id", "field", "reason"]
TABLES = ("leads", "events")  # a flat export is one table of leads
DUPLICATE_ID = "duplicate id (the first row with this id is used)"
FUTURE = "in the future (later than the time of this run)"
LEAD_REJECTED = "its lead was rejected (see the leads rows with this id)"
NO_LEAD = "no lead with this id in leads"


@dataclass
class Rejects:
    """Rows that could not be used, each with its table, file, row, lead id, field and reason.

    Ids are kept as read internally (events of a rejected lead are told apart from events of
    an unknown one); `frame`, what is written and logged, redacts ids that are personal data.
    """

    parts: list[pd.DataFrame] = field(default_factory=list)

    def add(
        self, table: str, file: str, rows, ids, field_name: str, reason: str, id_column: str = ""
    ) -> None:
        rows = np.asarray(rows)
        if len(rows) == 0:
            return
        ids = pd.Series(np.asarray(ids, dtype=object)).where(lambda s: s.notna(), "")
        self.parts.append(
            pd.DataFrame(
                {
                    "table": table,
                    "file": file,
                    "row": rows.astype(np.int64) + 1,  # 1 = first data row after the header
                    "lead_id": ids.astype(str).to_numpy(object),
                    "field": field_name,
                    "reason": reason,
                    "_personal_id": privacy.personal_name(id_column),
                }
            )
        )

    def extend(self, other: Rejects) -> None:
        self.parts.extend(other.parts)

    def _all(self) -> pd.DataFrame:
        if not self.parts:
            cols = [*REJECT_COLUMNS, "_personal_id"]
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        f = pd.concat(self.parts, ignore_index=True)
        # tables, then files in the order they were read, then rows in file order: the same
        # whichever engine (or piece of a file) found them first
        table_order = f["table"].map({t: i for i, t in enumerate(TABLES)}).fillna(len(TABLES))
        file_order = pd.factorize(f["file"])[0]
        order = np.lexsort((f["row"].to_numpy(), file_order, table_order.to_numpy()))
        return f.iloc[order].reset_index(drop=True)

    @property
    def frame(self) -> pd.DataFrame:
        """What may be written down: no values, and no id that is personal data."""
        f = self._all()
        personal = f["_personal_id"].astype(bool) | f["lead_id"].map(privacy.looks_personal)
        f["lead_id"] = f["lead_id"].where(~personal.astype(bool), REDACTED)
        return f[REJECT_COLUMNS]

    def ids(self, table: str) -> set:
        """The ids (as read) of the rejected rows of one table."""
        return {i for p in self.parts if (p["table"] == table).all() for i in p["lead_id"]}

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def counts(self, read: dict[str, int]) -> dict[str, TableCount]:
        """Rows read, used and rejected (by reason) per table."""
        f = self._all()
        out = {}
        for table, n in read.items():
            mine = f.loc[f["table"] == table, "reason"]
            by_reason = mine.value_counts(sort=True).astype(int).to_dict()
            out[table] = TableCount(table, int(n), {str(k): v for k, v in by_reason.items()})
        return out

    def summary(self) -> list[str]:
        """One line per (file, field, reason) with its count: what a person reads first."""
        f = self._all()
        if f.empty:
            return []
        counts = f.groupby(["file", "field", "reason"], sort=False).size()
        return [
            f"{file}: {n} row(s) rejected, {fld}: {reason}"
            for (file, fld, reason), n in counts.items()
        ]


@dataclass(frozen=True)
class TableCount:
    """Rows in = rows used + rows rejected, for one table."""

    table: str
    read: int
    rejected: dict[str, int]  # reason -> rows, commonest first

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected.values())

    @property
    def used(self) -> int:
        return self.read - self.rejected_rows

    @property
    def share(self) -> float:
        return self.rejected_rows / self.read if self.read else 0.0

    def line(self) -> str:
        """'events  61,234 read  61,228 used  6 rejected (3 unknown event type, ...)'."""
        text = f"{self.table:<7}{self.read:>12,} read {self.used:>12,} used {self.rejected_rows:>10,} rejected"
        if self.rejected:
            short = [(r.split(";")[0].split(" (")[0], n) for r, n in self.rejected.items()]
            shown = [f"{n:,} {reason}" for reason, n in short[:3]]
            more = len(self.rejected) - 3
            text += " (" + "; ".join(shown) + (f"; {more} more reasons" if more > 0 else "") + ")"
        return text

    def as_dict(self) -> dict:
        """Plain data for JSON and MLflow (reasons as [reason, rows] pairs: a reason is no key)."""
        return {
            "read": self.read,
            "used": self.used,
            "rejected": self.rejected_rows,
            "reasons": [[r, n] for r, n in self.rejected.items()],
        }

    @classmethod
    def from_dict(cls, table: str, d: dict) -> TableCount:
        return cls(table, int(d["read"]), {str(r): int(n) for r, n in d["reasons"]})


class TooManyRejects(ContractError):
    """A table with more rejected rows than the limit; carries the rejects to write down."""

    def __init__(self, message: str, rejects: pd.DataFrame):
        super().__init__(message)
        self.rejects = rejects
