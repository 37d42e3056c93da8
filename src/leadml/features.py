"""Fit and engagement features as of a cut-off: the one feature function.

`fit_spec` looks at training leads once and freezes what the features are (column kinds,
category vocabularies, windows, half-life). `build_features(leads, events, spec, as_of)`
then turns any leads into the feature matrix the model reads; training, `leadml score`, both
engines and the service all call it, so a lead gets the same features wherever it is scored.

What a lead *is* (title, size, region, a flat export's columns) is read by `fit_features`;
what it *did* (its events strictly before the cut-off) is counted by `engagement`. This
module puts the two side by side in the order the spec names them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from leadml import contract, privacy
from leadml.accounting import Rejects
from leadml.engagement import (
    KIND_LABELS,
    KINDS,
    NEGATIVE_KINDS,
    RATIO_FEATURES,
    as_of_array,
    engagement,
    engagement_names,
)
from leadml.fit_features import (
    CRM_CATEGORIES,
    CRM_FIT,
    binary_value,
    codes,
    crm_category_counts,
    department_of,
    normalise_department,
    normalise_seniority,
    numbers,
    per_value,
    seniority_of,
    vocabulary,
    vocabulary_from_counts,
)
from leadml.values import FALSE_WORDS, TRUE_WORDS


@dataclass
class ColumnSpec:
    """One input column of a flat export and how it becomes features."""

    name: str
    kind: str  # "numeric", "binary", "category" or "title"
    categories: list[str] = field(default_factory=list)
    minimum: float | None = None  # numeric: 0 when never negative in training (counts, durations)


@lru_cache(maxsize=16)
def _reason_groups(
    kind: str, names: tuple[str, ...], labels: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """`FeatureSpec.reason_groups`, kept per spec: every lead's reasons ask for it (a few times
    when it has grades), and finding each feature's kind took 0.6 ms a time."""
    named = dict(labels)
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        what = {"unsubscribed": "unsubscribe", "bounced": "bounce"}.get(name) or next(
            (k for k in KINDS if name.startswith(k + "_")), None
        )
        label = KIND_LABELS[what] if kind == "crm" and what else named.get(name, name)
        groups.setdefault(label, []).append(j)
    return tuple((label, tuple(cols)) for label, cols in groups.items())


@dataclass
class FeatureSpec:
    """What the features are, frozen at training time and saved with the model."""

    kind: str  # "crm" or "flat"
    id_column: str
    feature_names: list[str]
    categorical: list[str]
    categories: dict[str, list[str]]
    labels: dict[str, str]
    columns: list[ColumnSpec] = field(default_factory=list)
    windows_days: list[int] = field(default_factory=lambda: [7, 30, 90])
    observation_days: int = 180
    half_life_days: float = 14.0
    velocity_days: int = 14
    skipped: dict[str, str] = field(default_factory=dict)

    def monotone_constraints(self) -> list[int]:
        """+1 for positive engagement, -1 for negatives and recency gaps, 0 for the rest."""
        out = []
        for name in self.feature_names:
            kind = next((k for k in KINDS if name.startswith(k + "_")), None)
            if kind is not None:
                out.append(-1 if kind in NEGATIVE_KINDS else 1)
            elif name in ("engagement_decayed", "intent_decayed"):
                out.append(1)
            elif name.startswith("days_since") or name in ("unsubscribed", "bounced"):
                out.append(-1)
            else:
                out.append(0)
        return out

    def reason_groups(self) -> dict[str, list[int]]:
        """Business-readable reason -> the feature columns behind it.

        The windows and the recent-weighted count of one activity are one reason ("Pricing
        page views"), so a lead's reasons name what a marketer recognises, once each.
        """
        found = _reason_groups(self.kind, tuple(self.feature_names), tuple(self.labels.items()))
        return {label: list(cols) for label, cols in found}

    def describe(self, columns: list[int], row: np.ndarray) -> str:
        """The lead's value behind a reason, as a marketer would read it ("VP", "3 in 30 days")."""
        names = [self.feature_names[j] for j in columns]
        if len(names) > 1:  # an activity: its count over the windows
            counts = [
                (w, row[j])
                for w in self.windows_days
                for j, n in zip(columns, names, strict=True)
                if n.endswith(f"_{w}d")
            ]
            if counts:
                w, longest = counts[-1]
                return f"{longest:.0f} in the last {w} days"
        name, value = names[0], row[columns[0]]
        if np.isnan(value):
            return "missing"
        if name in self.categories:
            vocab = self.categories[name]
            return vocab[int(value)] if int(value) < len(vocab) else "not seen in training"
        binary = {c.name for c in self.columns if c.kind == "binary"} | {"unsubscribed", "bounced"}
        if name in binary:
            return "yes" if value else "no"
        text = f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text

    def input_fields(self) -> list[str]:
        """The raw lead fields a caller sends (besides events for CRM models)."""
        if self.kind == "crm":
            return contract.names("leads", "key", "profile")
        return [self.id_column] + [c.name for c in self.columns]


@dataclass
class Features:
    """The feature matrix for the leads that could be scored, and those that could not."""

    X: (
        pd.DataFrame
    )  # index: the leads' index; columns: spec.feature_names; float64, categories as codes
    ids: np.ndarray
    rejects: Rejects
    unseen: dict[str, int] = field(default_factory=dict)  # field -> how many values were new
    unseen_rows: dict[str, np.ndarray] = field(default_factory=dict)  # field -> mask over X's rows


def _infer_flat_columns(
    frame: pd.DataFrame, exclude: set[str], max_categories: int
) -> tuple[list[ColumnSpec], dict[str, str]]:
    specs, skipped = [], {}
    for col in frame.columns:
        if col in exclude:
            continue
        values = frame[col]
        present = values.dropna().astype(str).str.strip()
        present = present[present != ""]
        is_flag = present.str.lower().isin(TRUE_WORDS | FALSE_WORDS).all() and not present.empty
        # "Do Not Email" (yes/no) is consent, not personal data
        if not is_flag and privacy.personal_column(col, present):
            skipped[col] = "personal data (by its name or its values): never used as a feature"
        elif present.empty or present.nunique() < 2:
            skipped[col] = "constant or empty"
        elif pd.to_numeric(present, errors="coerce").notna().mean() >= 0.95:
            numbers = pd.to_numeric(present, errors="coerce")
            looks_like_id = present.nunique() == len(frame) and (numbers.round() == numbers).all()
            if looks_like_id:
                skipped[col] = "a unique integer per row: looks like an id (pass it with --id)"
            else:
                specs.append(
                    ColumnSpec(col, "numeric", minimum=0.0 if numbers.min() >= 0 else None)
                )
        elif present.str.lower().isin(TRUE_WORDS | FALSE_WORDS).mean() >= 0.95:
            specs.append(ColumnSpec(col, "binary"))
        elif present.nunique() > max(50, 0.5 * len(present)):
            skipped[col] = "free text or an id (too many distinct values)"
        elif re.search(r"title|position|role", str(col), re.I):
            specs.append(ColumnSpec(col, "title"))
        else:
            specs.append(ColumnSpec(col, "category", vocabulary(present, max_categories)))
    return specs, skipped


def fit_spec(data, config, counts: dict[str, pd.Series] | None = None) -> FeatureSpec:
    """Decide the features from the training leads (column kinds, vocabularies, windows).

    CRM models may be given the category `counts` of the training rows instead of the rows
    themselves (`data.leads` is then not read), for leads that do not fit in one process.
    """
    fc = config.features
    if data.kind == "crm":
        counts = crm_category_counts(data.leads) if counts is None else counts
        cats = {
            name: vocabulary_from_counts(counts[name], config.flat.max_categories)
            for name in CRM_FIT
        }
        names = CRM_CATEGORIES + ["lead_age_days"] + engagement_names(fc.windows_days)
        if (
            config.model.monotone
        ):  # a ratio can fall when an event is added: no place in a monotone model
            names = [n for n in names if n not in RATIO_FEATURES]
        labels = {n: n.replace("_", " ").capitalize() for n in CRM_CATEGORIES}
        labels |= {"lead_age_days": "Days since the lead was created"}
        for k in KINDS:
            for w in fc.windows_days:
                labels[f"{k}_{w}d"] = f"{KIND_LABELS[k]} (last {w} days)"
            labels[f"{k}_decayed"] = f"{KIND_LABELS[k]} (recent-weighted)"
        labels |= {
            "engagement_decayed": "Overall engagement (recent-weighted)",
            "intent_decayed": "Buying intent (pricing, demo, trial, cart)",
            "days_since_last_event": "Days since last activity",
            "days_since_last_intent": "Days since last buying signal",
            "velocity": "Engagement trend (recent vs before)",
            "email_click_rate": "Email click rate",
            "unsubscribed": "Unsubscribed",
            "bounced": "Email bounced",
        }
        return FeatureSpec(
            kind="crm",
            id_column="lead_id",
            feature_names=names,
            categorical=list(CRM_CATEGORIES),
            categories=cats,
            labels=labels,
            windows_days=list(fc.windows_days),
            observation_days=fc.observation_days,
            half_life_days=fc.half_life_days,
            velocity_days=fc.velocity_days,
        )
    exclude = {data.id_column, data.target, data.date_column} - {None}
    columns, skipped = _infer_flat_columns(data.leads, exclude, config.flat.max_categories)
    names, categorical, cats, labels = [], [], {}, {}
    for c in columns:
        if c.kind == "title":
            for part, fn in (
                ("seniority", normalise_seniority),
                ("department", normalise_department),
            ):
                fname = f"{c.name} ({part})"
                names.append(fname)
                categorical.append(fname)
                cats[fname] = vocabulary(fn(data.leads[c.name]), config.flat.max_categories)
                labels[fname] = fname
        else:
            names.append(c.name)
            labels[c.name] = c.name
            if c.kind == "category":
                categorical.append(c.name)
                cats[c.name] = c.categories
    return FeatureSpec(
        kind="flat",
        id_column=data.id_column,
        feature_names=names,
        categorical=categorical,
        categories=cats,
        labels=labels,
        columns=columns,
        skipped=skipped,
    )


def build_features(
    leads: pd.DataFrame,
    events: pd.DataFrame | None,
    spec: FeatureSpec,
    as_of=None,
    source: str = "leads",
) -> Features:
    """The feature matrix for `leads` as of `as_of`; rows with unusable values go to rejects.

    For CRM models `events` are the leads' activities (columns lead_id, occurred_at,
    event_type, page) and `as_of` is the cut-off, one timestamp or one per lead. Flat models
    read only the lead columns.
    """
    rejects = Rejects()
    unseen: dict[str, np.ndarray] = {}
    cols: dict[str, np.ndarray] = {}
    keep = np.ones(len(leads), bool)
    ids = (
        leads[spec.id_column].to_numpy()
        if spec.id_column in leads
        else np.arange(1, len(leads) + 1)
    )
    if spec.kind == "crm":
        cut = as_of_array(leads, as_of)
        for name, (field_name, fn) in CRM_FIT.items():
            cols[name], unseen[name] = codes(leads[field_name], spec.categories[name], fn)
        created = (
            pd.to_datetime(leads["created_at"]).to_numpy("datetime64[ns]")
            if "created_at" in leads
            else np.full(len(leads), np.datetime64("NaT"), "datetime64[ns]")
        )
        cols["lead_age_days"] = (cut - created).astype("timedelta64[s]").astype(
            np.float64
        ) / 86400.0
        eng = engagement(leads, events, cut, spec)
        for i, name in enumerate(engagement_names(spec.windows_days)):
            cols[name] = eng[:, i]
        del eng  # only the views in `cols` hold it now
    else:
        for c in spec.columns:
            values = (
                leads[c.name]
                if c.name in leads
                else pd.Series(pd.NA, index=leads.index, dtype="string")
            )
            if c.kind == "numeric":
                num, reasons = numbers(values, c.minimum)
                for reason in dict.fromkeys(r for r in reasons if r):
                    rows = np.flatnonzero((reasons == reason) & keep)
                    rejects.add(
                        "leads",
                        source,
                        leads.index.to_numpy()[rows],
                        ids[rows],
                        c.name,
                        reason,
                        spec.id_column,
                    )
                    keep[rows] = False
                cols[c.name] = num
            elif c.kind == "binary":
                cols[c.name] = per_value(values, binary_value, dtype=np.float64)
            elif c.kind == "title":
                for part, fn in (("seniority", seniority_of), ("department", department_of)):
                    fname = f"{c.name} ({part})"
                    cols[fname], unseen[fname] = codes(values, spec.categories[fname], fn)
            else:
                cols[c.name], unseen[c.name] = codes(values, spec.categories[c.name])
    matrix = np.empty((len(leads), len(spec.feature_names)))
    for j, name in enumerate(spec.feature_names):
        matrix[:, j] = cols[name]
    cols.clear()  # frees the engagement block before the frame exists: 10M leads x 70 floats
    # the matrix is ours: the frame wraps it (pandas would copy it by default), and stays
    # C-ordered for Booster.predict. Two fewer copies of n x features than before.
    values = matrix if keep.all() else matrix[keep]
    X = pd.DataFrame(values, columns=spec.feature_names, index=leads.index[keep], copy=False)
    return Features(
        X=X,
        ids=ids[keep],
        rejects=rejects,
        unseen={k: int(m.sum()) for k, m in unseen.items() if m.any()},
        unseen_rows={k: m[keep] for k, m in unseen.items() if m.any()},
    )
