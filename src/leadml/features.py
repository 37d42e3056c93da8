"""Fit and engagement features as of a cut-off: the one feature function.

`fit_spec` looks at training leads once and freezes what the features are (column kinds,
category vocabularies, windows, half-life). `build_features(leads, events, spec, as_of)`
then turns any leads into the feature matrix the model reads; training, `leadml score` and
the service all call it, so a lead gets the same features wherever it is scored.

Only events strictly before a lead's cut-off (`as_of`) and inside the observation window are
counted, so nothing that happened afterwards can leak into a score.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from leadml import privacy
from leadml.contract import EVENT_TYPES, PAGE_KINDS
from leadml.dataset import Rejects
from leadml.errors import ContractError
from leadml.values import FALSE_WORDS, TRUE_WORDS, binary_word

# what the feature function counts: page views by kind of page, then the other event types
KINDS = [f"{page}_view" for page in PAGE_KINDS] + [t for t in EVENT_TYPES if t != "page_view"]
NEGATIVE_KINDS = ("unsubscribe", "bounce")
INTENT_KINDS = ("pricing_view", "demo_request", "trial_start", "cart_add")
RATIO_FEATURES = ("velocity", "email_click_rate")
KIND_LABELS = {
    "pricing_view": "Pricing page views", "product_view": "Product page views", "blog_view": "Blog page views",
    "other_view": "Other page views", "email_open": "Email opens", "email_click": "Email clicks",
    "content_download": "Content downloads", "webinar": "Webinars", "form_submit": "Form submits",
    "demo_request": "Demo requests", "trial_start": "Trial starts", "cart_add": "Cart adds",
    "unsubscribe": "Unsubscribes", "bounce": "Email bounces",
}  # fmt: skip
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
    "EMEA": ["uk", "united kingdom", "gb", "germany", "de", "france", "fr", "netherlands", "nl", "spain", "italy",
             "sweden", "ireland", "switzerland", "poland", "south africa", "uae", "united arab emirates", "nigeria",
             "saudi arabia", "qatar", "kuwait", "oman", "bahrain", "belgium", "denmark", "norway", "finland"],
    "APAC": ["india", "in", "singapore", "sg", "australia", "au", "japan", "china", "hong kong", "new zealand",
             "indonesia", "philippines", "malaysia", "south korea", "sri lanka", "bangladesh", "vietnam"],
}  # fmt: skip
_REGION_OF = {c: r for r, names in REGIONS.items() for c in names}
MIN_CATEGORY_COUNT = 5
_SMALL = 64  # rows: below this, per-value work is plain Python (the service's case)


def _clean(value) -> str | None:
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
    return _first_rule(_clean(title), _SENIORITY_RX, "Individual")


def department_of(title) -> str:
    return _first_rule(_clean(title), _DEPARTMENT_RX, "Other")


def region_name(country) -> str:
    text = _clean(country)
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


@dataclass
class ColumnSpec:
    """One input column of a flat export and how it becomes features."""

    name: str
    kind: str  # "numeric", "binary", "category" or "title"
    categories: list[str] = field(default_factory=list)
    minimum: float | None = None  # numeric: 0 when never negative in training (counts, durations)


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
        groups: dict[str, list[int]] = {}
        for j, name in enumerate(self.feature_names):
            kind = {"unsubscribed": "unsubscribe", "bounced": "bounce"}.get(name) or next(
                (k for k in KINDS if name.startswith(k + "_")), None
            )
            label = (
                KIND_LABELS[kind] if self.kind == "crm" and kind else self.labels.get(name, name)
            )
            groups.setdefault(label, []).append(j)
        return groups

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
            return [
                "lead_id",
                "created_at",
                "job_title",
                "company_size",
                "industry",
                "country",
                "lead_source",
            ]
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


def _vocabulary(values: pd.Series, max_categories: int) -> list[str]:
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
    "company_size": ("company_size", _clean),
    "industry": ("industry", _clean),
    "region": ("country", region_name),
    "lead_source": ("lead_source", _clean),
}


def _crm_fit_columns(leads: pd.DataFrame) -> dict[str, pd.Series]:
    return {
        name: pd.Series(per_value(leads[field_name], fn), index=leads.index, dtype=object)
        for name, (field_name, fn) in CRM_FIT.items()
    }


def crm_category_counts(leads: pd.DataFrame) -> dict[str, pd.Series]:
    """How often each normalised fit value occurs among `leads`; counts of parts of the leads
    add up to the counts of the whole (the Dask engine counts per partition)."""
    return {
        name: series.dropna().astype(str).value_counts()
        for name, series in _crm_fit_columns(leads).items()
    }


def _engagement_names(windows: list[int]) -> list[str]:
    names = [f"{k}_{w}d" for k in KINDS for w in windows] + [f"{k}_decayed" for k in KINDS]
    return names + [
        "engagement_decayed", "intent_decayed", "days_since_last_event", "days_since_last_intent",
        "velocity", "email_click_rate", "unsubscribed", "bounced",
    ]  # fmt: skip


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
            specs.append(ColumnSpec(col, "category", _vocabulary(present, max_categories)))
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
        names = CRM_CATEGORIES + ["lead_age_days"] + _engagement_names(fc.windows_days)
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
            "engagement_decayed": "Overall engagement (recent-weighted)", "intent_decayed": "Buying intent (pricing, demo, trial, cart)",
            "days_since_last_event": "Days since last activity", "days_since_last_intent": "Days since last buying signal",
            "velocity": "Engagement trend (recent vs before)", "email_click_rate": "Email click rate",
            "unsubscribed": "Unsubscribed", "bounced": "Email bounced",
        }  # fmt: skip
        return FeatureSpec(
            kind="crm", id_column="lead_id", feature_names=names, categorical=list(CRM_CATEGORIES), categories=cats,
            labels=labels, windows_days=list(fc.windows_days), observation_days=fc.observation_days,
            half_life_days=fc.half_life_days, velocity_days=fc.velocity_days,
        )  # fmt: skip
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
                cats[fname] = _vocabulary(fn(data.leads[c.name]), config.flat.max_categories)
                labels[fname] = fname
        else:
            names.append(c.name)
            labels[c.name] = c.name
            if c.kind == "category":
                categorical.append(c.name)
                cats[c.name] = c.categories
    return FeatureSpec(
        kind="flat", id_column=data.id_column, feature_names=names, categorical=categorical, categories=cats,
        labels=labels, columns=columns, skipped=skipped,
    )  # fmt: skip


def _codes(
    values: pd.Series, vocabulary: list[str], normalise: Callable[[Any], Any] = _clean
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


def _index_in(values: pd.Series, vocabulary) -> np.ndarray:
    """Position of each value in `vocabulary` (-1 when absent); fast for categoricals."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        position = {v: i for i, v in enumerate(vocabulary)}
        lookup = np.array([position.get(str(c), -1) for c in values.cat.categories] + [-1])
        return lookup[values.cat.codes.to_numpy()].astype(np.int64)  # code -1 (NaN) -> -1
    return pd.Index(vocabulary).get_indexer(values.astype(str)).astype(np.int64)


def _engagement(
    leads: pd.DataFrame, events: pd.DataFrame | None, as_of: np.ndarray, spec: FeatureSpec
) -> np.ndarray:
    """Engagement matrix (n_leads x engagement features) from events strictly before each lead's cut-off.

    The same lead may appear once per cut-off (training snapshots): rows are then handled
    one cut-off at a time, so each event is matched to exactly one row per cut-off.
    """
    ids = leads["lead_id"]
    if not ids.is_unique:
        out = np.zeros((len(leads), len(_engagement_names(spec.windows_days))))
        for cut in np.unique(as_of):
            rows = np.flatnonzero(as_of == cut)
            sub = leads.iloc[rows]
            if not sub["lead_id"].is_unique:
                dup = sub["lead_id"][sub["lead_id"].duplicated()].iloc[0]
                raise ContractError(
                    f"lead_id {dup!r} appears twice with the same cut-off; each lead needs one row per as_of"
                )
            out[rows] = _engagement_unique(sub, events, as_of[rows], spec)
        return out
    return _engagement_unique(leads, events, as_of, spec)


def _event_ages(
    leads: pd.DataFrame, events: pd.DataFrame, as_of: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per event: its lead's row, its kind (index in KINDS), its age in days at that lead's
    cut-off, and whether it counts (a known lead and type, strictly before the cut-off)."""
    owner = pd.Index(leads["lead_id"]).get_indexer(events["lead_id"])
    etype = _index_in(events["event_type"], EVENT_TYPES)
    page = _index_in(events["page"], ("pricing", "product", "blog"))
    # kind index: page views split by page kind, other events shifted after the four page kinds
    kind = np.where(etype == 0, np.where(page >= 0, page, 3), etype + 3)
    when = events["occurred_at"].to_numpy("datetime64[ns]")
    valid = (owner >= 0) & (etype >= 0)
    cut = as_of[np.clip(owner, 0, None)]
    age = (cut - when).astype("timedelta64[s]").astype(np.float64) / 86400.0
    # strictly before the cut-off: nothing that happened later can leak
    before = valid & (age > 0) & ~np.isnan(age)
    return owner, kind, age, before


def days_since_activity(
    leads: pd.DataFrame, events: pd.DataFrame | None, as_of, spec: FeatureSpec
) -> np.ndarray:
    """Days since each lead's last activity of each kind (n x KINDS), within the observation
    window and strictly before the cut-off; the window's length when there was none.
    Point rules use it to let an activity's points fade."""
    n, K = len(leads), len(KINDS)
    out = np.full((n, K), np.inf)
    cut = _as_of_array(leads, as_of)
    if events is not None and len(events):
        # a lead appears once per cut-off in training rows: match events one cut-off at a time
        for c in np.unique(cut) if not leads["lead_id"].is_unique else [None]:
            rows = np.arange(n) if c is None else np.flatnonzero(cut == c)
            owner, kind, age, before = _event_ages(leads.iloc[rows], events, cut[rows])
            keep = before & (age <= spec.observation_days)
            np.minimum.at(out, (rows[owner[keep]], kind[keep]), age[keep])
    out[np.isinf(out)] = spec.observation_days
    return out


def _engagement_unique(
    leads: pd.DataFrame, events: pd.DataFrame | None, as_of: np.ndarray, spec: FeatureSpec
) -> np.ndarray:
    n, K, windows = len(leads), len(KINDS), spec.windows_days
    out_names = _engagement_names(windows)
    out = np.zeros((n, len(out_names)))
    counts: dict[int, np.ndarray]
    decayed: np.ndarray
    last_any: np.ndarray
    last_intent: np.ndarray
    recent: np.ndarray
    previous: np.ndarray
    unsub: np.ndarray
    bounced: np.ndarray
    if events is None or events.empty:
        counts = {w: np.zeros((n, K)) for w in windows}
        decayed = np.zeros((n, K))
        last_any = last_intent = np.full(n, float(spec.observation_days))
        recent = previous = unsub = bounced = np.zeros(n)
    else:
        owner, kind, age, before = _event_ages(leads, events, as_of)
        unsub = np.bincount(owner[before & (kind == KINDS.index("unsubscribe"))], minlength=n) > 0
        bounced = np.bincount(owner[before & (kind == KINDS.index("bounce"))], minlength=n) > 0
        inwin = before & (age <= spec.observation_days)
        o, k, a = owner[inwin], kind[inwin], age[inwin]
        flat_ix = o * K + k
        counts = {w: np.bincount(flat_ix[a <= w], minlength=n * K).reshape(n, K) for w in windows}
        decayed = np.bincount(
            flat_ix, weights=np.exp2(-a / spec.half_life_days), minlength=n * K
        ).reshape(n, K)
        last_any = np.full(n, np.inf)
        np.minimum.at(last_any, o, a)
        intent = np.isin(k, [KINDS.index(x) for x in INTENT_KINDS])
        last_intent = np.full(n, np.inf)
        np.minimum.at(last_intent, o[intent], a[intent])
        # no activity inside the window reads as "as stale as the window", not as missing, so
        # that one more event can only make a lead look more recent (monotone constraints)
        last_any[np.isinf(last_any)] = spec.observation_days
        last_intent[np.isinf(last_intent)] = spec.observation_days
        v = spec.velocity_days
        recent = np.bincount(o[a <= v], minlength=n)
        previous = np.bincount(o[(a > v) & (a <= 2 * v)], minlength=n)
    col = 0
    for w in windows:
        out[:, col : col + K] = counts[w]
        col += K
    # names are kind-major ({kind}_{w}d for each kind, then window): reorder the window-major blocks
    block = (
        out[:, : K * len(windows)]
        .reshape(n, len(windows), K)
        .transpose(0, 2, 1)
        .reshape(n, K * len(windows))
    )
    out[:, : K * len(windows)] = block
    out[:, col : col + K] = decayed
    col += K
    positive = [i for i, k in enumerate(KINDS) if k not in NEGATIVE_KINDS]
    out[:, col] = decayed[:, positive].sum(axis=1)
    out[:, col + 1] = decayed[:, [KINDS.index(x) for x in INTENT_KINDS]].sum(axis=1)
    out[:, col + 2] = last_any
    out[:, col + 3] = last_intent
    out[:, col + 4] = np.log((recent + 1.0) / (previous + 1.0))
    longest = counts[max(windows)]
    out[:, col + 5] = longest[:, KINDS.index("email_click")] / (
        longest[:, KINDS.index("email_open")] + 1.0
    )
    out[:, col + 6] = unsub
    out[:, col + 7] = bounced
    return out


def _as_of_array(leads: pd.DataFrame, as_of) -> np.ndarray:
    if as_of is None:
        raise ContractError(
            "CRM features need a cut-off: pass as_of (a timestamp, or one per lead)"
        )
    if isinstance(as_of, pd.Series | np.ndarray | list):
        return pd.to_datetime(pd.Series(as_of)).to_numpy("datetime64[ns]")
    return np.full(len(leads), pd.Timestamp(as_of).to_datetime64().astype("datetime64[ns]"))


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
        cut = _as_of_array(leads, as_of)
        for name, (field_name, fn) in CRM_FIT.items():
            cols[name], unseen[name] = _codes(leads[field_name], spec.categories[name], fn)
        created = (
            pd.to_datetime(leads["created_at"]).to_numpy("datetime64[ns]")
            if "created_at" in leads
            else np.full(len(leads), np.datetime64("NaT"), "datetime64[ns]")
        )
        cols["lead_age_days"] = (cut - created).astype("timedelta64[s]").astype(
            np.float64
        ) / 86400.0
        eng = _engagement(leads, events, cut, spec)
        for i, name in enumerate(_engagement_names(spec.windows_days)):
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
                num, reasons = _numbers(values, c)
                for reason in dict.fromkeys(r for r in reasons if r):
                    rows = np.flatnonzero((reasons == reason) & keep)
                    rejects.add("leads", source, leads.index.to_numpy()[rows], ids[rows],
                                c.name, reason, spec.id_column)  # fmt: skip
                    keep[rows] = False
                cols[c.name] = num
            elif c.kind == "binary":
                cols[c.name] = per_value(values, _binary, dtype=np.float64)
            elif c.kind == "title":
                for part, fn in (("seniority", seniority_of), ("department", department_of)):
                    fname = f"{c.name} ({part})"
                    cols[fname], unseen[fname] = _codes(values, spec.categories[fname], fn)
            else:
                cols[c.name], unseen[c.name] = _codes(values, spec.categories[c.name])
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


def _binary(value) -> float:
    text = _clean(value)
    answer = binary_word(text) if text else None
    return np.nan if answer is None else float(answer)


def _numbers(values: pd.Series, column: ColumnSpec) -> tuple[np.ndarray, np.ndarray]:
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
    if column.minimum is not None:
        reasons[np.isfinite(num) & (num < column.minimum)] = (
            f"below {column.minimum:g}, the lowest value in training (a count or a duration?)"
        )
    return num, reasons
