"""The input contract of CRM tables, declared once.

Which columns the `leads` and `events` tables carry, which are required, and what each
holds. `dataset` checks files against it, `records` builds request tables from it,
`schemas` gives the service's request model (and so `/docs`) its fields and descriptions
from it, and the README's table of columns is this module's `markdown()` (a test keeps the
two equal; `python -m leadml.contract` prints it).

A flat export has no fixed contract: its columns are whatever the export held at training,
and the feature spec of the model remembers them.
"""

from __future__ import annotations

from dataclasses import dataclass

EVENT_TYPES = (
    "page_view",
    "email_open",
    "email_click",
    "content_download",
    "webinar",
    "form_submit",
    "demo_request",
    "trial_start",
    "cart_add",
    "activation",
    "feature_use",
    "seat_invite",
    "unsubscribe",
    "bounce",
)
PAGE_KINDS = ("pricing", "product", "blog", "other")


@dataclass(frozen=True)
class Column:
    """One column of a CRM table.

    `role`: "key" (always required), "outcome" (required for training only), "profile"
    (optional fit fields the model reads), "event" (a required events column) or "detail"
    (an optional events column).
    """

    table: str
    name: str
    role: str
    description: str

    @property
    def required(self) -> str:
        return {"key": "yes", "event": "yes", "outcome": "to train"}.get(self.role, "no")


COLUMNS = (
    Column("leads", "lead_id", "key", "Your id for the lead; echoed back"),
    Column("leads", "created_at", "key", "When the lead was created"),
    Column("leads", "converted", "outcome", "Whether the lead converted: 0/1, yes/no, true/false"),
    Column("leads", "converted_at", "outcome", "When it converted (empty when it did not)"),
    Column(
        "leads",
        "job_title",
        "profile",
        "Job title as typed (normalised to seniority and department)",
    ),
    Column("leads", "company_size", "profile", "Company size band, e.g. 51-200"),
    Column("leads", "industry", "profile", "Industry"),
    Column("leads", "country", "profile", "Country (grouped into regions)"),
    Column(
        "leads", "lead_source", "profile", "Where the lead came from, e.g. Webinar, Paid search"
    ),
    Column("events", "lead_id", "event", "The lead it belongs to"),
    Column("events", "occurred_at", "event", "When it happened"),
    Column("events", "event_type", "event", "What happened: one of " + ", ".join(EVENT_TYPES)),
    Column(
        "events",
        "page",
        "detail",
        f"For page views: {', '.join(PAGE_KINDS)} (anything else counts as other)",
    ),
)


def names(table: str, *roles: str) -> list[str]:
    """The columns of `table` with one of `roles`, in the contract's order."""
    return [c.name for c in COLUMNS if c.table == table and c.role in roles]


def describe(table: str, name: str) -> str:
    """What column `name` of `table` holds."""
    return next(c.description for c in COLUMNS if c.table == table and c.name == name)


LEAD_COLUMNS = names("leads", "key")
OUTCOME_COLUMNS = names("leads", "outcome")
PROFILE_COLUMNS = names("leads", "profile")
EVENT_COLUMNS = names("events", "event")


def markdown() -> str:
    """The contract as the README's table."""
    rows = ["| table | column | required | what it holds |", "| --- | --- | --- | --- |"]
    rows += [f"| {c.table} | `{c.name}` | {c.required} | {c.description} |" for c in COLUMNS]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
