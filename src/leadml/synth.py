"""Synthetic CRM data with known answers: the embedded default and a fair test.

`make_crm(n_leads, seed)` draws leads (messy job titles, firmographics, a source) and event
streams whose intensity decays after the lead is created, with re-engagement bursts,
unsubscribes and bounces; a lead that starts a trial then uses the product (activation, key
feature use, seats invited), which raises its chance to convert (the PQL signal). The chance that a lead converts within `HORIZON_DAYS` after the
snapshot `AS_OF` is a known function of what can be observed before `AS_OF`: its
profile and its decayed engagement per event kind. That probability is written to a truth
file, so the Bayes-optimal AUC and log loss can be printed next to the model's, and the
sign of every behaviour's true effect is recorded for the points ledger.

A later period (`later=True`) is the same world a quarter on: every date shifted by
`LATER_DAYS`, new leads. It can carry known drift (`drift`: a field's shares move by a recorded,
large amount, or an engagement kind's rate) and a known concept change (`concept`: the way
conversion depends on the profile and behaviour changes), recorded under "drift" and
"concept" in truth.json, so `leadml monitor` can be tested against answers known in advance.

Everything is vectorised NumPy, deterministic by seed, and fast enough for 1M+ leads.

Longer than our ~400-line rule on purpose: one generative story (who the leads are, what
they do, when they convert) that reads best top to bottom, with its constants beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from leadml import files
from leadml.errors import ConfigError

AS_OF = pd.Timestamp("2026-06-30")
HORIZON_DAYS = 30
HISTORY_DAYS = 360
HALF_LIFE_DAYS = 14.0  # the truth uses the same decay the default feature config uses
OBSERVATION_DAYS = 180

SENIORITY = ["C-level", "VP", "Director", "Manager", "Individual", "Student"]
SENIORITY_P = [0.05, 0.08, 0.14, 0.25, 0.40, 0.08]
SENIORITY_EFFECT = [1.3, 1.2, 0.9, 0.45, 0.0, -1.5]
DEPARTMENTS = ["Marketing", "Sales", "Engineering", "Finance", "Operations", "HR", "IT"]
DEPT_LETTER = ["M", "R", "T", "F", "O", "H", "I"]
COMPANY_SIZES = ["1-10", "11-50", "51-200", "201-1000", "1001-5000", "5000+"]
SIZE_P = [0.18, 0.22, 0.22, 0.18, 0.12, 0.08]
SIZE_EFFECT = [-0.6, 0.0, 0.3, 0.6, 0.6, 0.3]
INDUSTRIES = [
    "Software",
    "Finance",
    "Healthcare",
    "Retail",
    "Manufacturing",
    "Education",
    "Government",
    "Other",
]
INDUSTRY_EFFECT = [0.45, 0.3, 0.15, 0.0, 0.0, -0.45, -0.6, -0.15]
COUNTRIES = [
    "US",
    "United States",
    "UK",
    "Germany",
    "France",
    "India",
    "Brazil",
    "Canada",
    "Australia",
    "Netherlands",
    "Singapore",
    "Mexico",
]
COUNTRY_P = [0.28, 0.06, 0.1, 0.08, 0.05, 0.12, 0.06, 0.07, 0.05, 0.04, 0.04, 0.05]
SOURCES = [
    "Organic Search",
    "Paid Search",
    "Referral",
    "Event",
    "Webinar",
    "Social",
    "Content Syndication",
    "Outbound",
]
SOURCE_P = [0.25, 0.2, 0.08, 0.07, 0.1, 0.12, 0.1, 0.08]
SOURCE_EFFECT = [0.15, 0.0, 0.75, 0.45, 0.3, -0.3, -0.45, -0.3]

# Engagement kinds: (event_type, page) -> expected lifetime count at average intent,
# intent loading, and true weight on log1p(decayed count) in the conversion logit.
KINDS = {
    "page_view:pricing": (1.2, 0.9, 0.8),
    "page_view:product": (2.5, 0.7, 0.45),
    "page_view:blog": (4.0, 0.3, 0.0),
    "page_view:other": (1.5, 0.3, 0.1),
    "email_open": (6.0, 0.5, 0.25),
    "email_click": (1.5, 0.7, 0.6),
    "content_download": (0.8, 0.7, 0.5),
    "webinar": (0.3, 0.8, 0.7),
    "form_submit": (0.6, 0.7, 0.6),
    "demo_request": (0.15, 1.1, 1.8),
    "trial_start": (0.25, 1.1, 1.4),
    "cart_add": (0.1, 1.0, 1.0),
    # product usage, only after the lead's first trial start (counts per trial user)
    "activation": (0.7, 0.9, 0.9),
    "feature_use": (3.0, 0.8, 0.5),
    "seat_invite": (0.5, 1.0, 1.0),
}
USAGE = ("activation", "feature_use", "seat_invite")
PRICING_LARGE_COMPANY_BONUS = 0.8  # extra weight on pricing views for 201+ employees
UNSUBSCRIBE_EFFECT = -1.5
BOUNCE_EFFECT = -1.0
TARGET_RATE = 0.17  # conversion within 30 days among leads eligible at a snapshot
N_SNAPSHOTS = 12

LATER_DAYS = 91  # the later period: the same world a quarter on (AS_OF 2026-09-29)
LATER_FIRST_ID = 10_000_001  # its leads are new leads: ids apart from today's
# Drift of a profile field in the later period: its shares there (population stability index
# of its derived feature well above 0.25). lead_source instead gains a new source.
DRIFT_SHARES = {
    "company_size": [0.40, 0.30, 0.14, 0.08, 0.05, 0.03],  # towards small companies
    "industry": [0.35, 0.2, 0.075, 0.075, 0.075, 0.075, 0.075, 0.075],  # towards software
    "country": [0.12, 0.03, 0.05, 0.04, 0.03, 0.28, 0.14, 0.03, 0.07, 0.02, 0.07, 0.12],
    "seniority": [0.15, 0.18, 0.20, 0.20, 0.20, 0.07],  # towards senior titles
}
NEW_SOURCE = "Partner"  # unseen in training; no effect on conversion
NEW_SOURCE_SHARE = 0.3
RATE_DRIFT = {"webinar": 10.0}  # engagement kind -> factor on its rate in the later period
# Derived features of a trained CRM model that a drift MUST move (a monitor has to flag
# them), and those it may move too.
DRIFT_DERIVED = {
    "company_size": ["company_size"],
    "lead_source": ["lead_source"],
    "industry": ["industry"],
    "country": ["region"],
    "seniority": ["seniority"],
    "webinar": ["webinar_30d", "webinar_90d", "webinar_decayed"],
}
_INTENT_MOVES = ["engagement_decayed", "intent_decayed"]  # seniority and source shift intent
DRIFT_AFFECTED = {
    "company_size": [],
    "lead_source": _INTENT_MOVES,
    "industry": [],
    "country": [],
    "seniority": ["department", *_INTENT_MOVES],  # CEO, founder, owner: department Executive
    # a week's count stays mostly zero, so it moves less
    "webinar": ["webinar_7d", "engagement_decayed", "days_since_last_event", "velocity"],
}
DRIFTS = tuple(DRIFT_DERIVED)
FIELD_VALUES = {
    "seniority": SENIORITY,
    "company_size": COMPANY_SIZES,
    "industry": INDUSTRIES,
    "country": COUNTRIES,
    "lead_source": SOURCES,
}
CONCEPT_ENGAGEMENT_FACTOR = 0.5  # concept change: engagement weights halved, sources reversed

_FIRST = [
    "Ana",
    "Ben",
    "Chen",
    "Dana",
    "Eli",
    "Fatima",
    "Goran",
    "Hana",
    "Ivan",
    "Jia",
    "Kofi",
    "Lena",
    "Mateo",
    "Nora",
    "Omar",
    "Priya",
]
_LAST = [
    "Silva",
    "Smith",
    "Wang",
    "Kowalski",
    "Okafor",
    "Garcia",
    "Novak",
    "Tanaka",
    "Muller",
    "Haddad",
    "Rossi",
    "Khan",
]


@dataclass(frozen=True)
class SynthResult:
    leads: pd.DataFrame
    events: pd.DataFrame
    truth: pd.DataFrame
    meta: dict


def _titles(rng: np.random.Generator, seniority: np.ndarray, dept: np.ndarray) -> np.ndarray:
    """Messy free-text job titles that a normaliser can (mostly) map back."""
    templates = {
        0: [
            "Chief {D} Officer",
            "C{L}O",
            "CEO",
            "Founder & CEO",
            "co-founder",
            "Chief Executive Officer",
            "Owner",
        ],
        1: ["VP {D}", "Vice President, {D}", "vp of {d}", "SVP {D}", "V.P. {D}"],
        2: ["Director of {D}", "{D} Director", "Sr. Director, {D}", "Head of {D}", "dir. {d}"],
        3: ["{D} Manager", "Senior {D} Manager", "{d} mgr", "Team Lead, {D}", "Manager - {D}"],
        4: [
            "{D} Specialist",
            "{D} Analyst",
            "{D} Coordinator",
            "Associate, {D}",
            "{D} Consultant",
            "Sr {D} Associate",
        ],
        5: ["Student", "Intern", "MBA candidate", "Graduate Student", "{D} Intern"],
    }
    n_t = max(len(t) for t in templates.values())
    pick = rng.integers(0, 10**6, size=len(seniority))
    case = rng.choice(3, size=len(seniority), p=[0.7, 0.2, 0.1])
    table: dict[tuple[int, int, int, int], str] = {}
    for s, temps in templates.items():
        for d, dname in enumerate(DEPARTMENTS):
            for t, temp in enumerate(temps):
                text = temp.format(D=dname, d=dname.lower(), L=DEPT_LETTER[d])
                for c, variant in enumerate((text, text.lower(), text.upper())):
                    table[(s, d, t, c)] = variant
    sizes = np.array([len(templates[s]) for s in range(len(templates))])
    tidx = pick % sizes[seniority]
    keys = ((seniority * len(DEPARTMENTS) + dept) * n_t + tidx) * 3 + case
    lookup = np.empty(len(SENIORITY) * len(DEPARTMENTS) * n_t * 3, dtype=object)
    for (s, d, t, c), text in table.items():
        lookup[((s * len(DEPARTMENTS) + d) * n_t + t) * 3 + c] = text
    titles = lookup[keys]
    titles[rng.random(len(seniority)) < 0.04] = None  # some forms leave it blank
    return titles


def _sample_times(rng, owner, start, tau, mass, end):
    """Event times of a decaying Poisson process per lead: intensity ~ exp(-(t-start)/tau)."""
    span = np.clip(end - start, 0, None)
    frac = 1.0 - np.exp(-span / tau)
    counts = rng.poisson(mass * frac)
    idx = np.repeat(owner, counts)
    u = rng.random(idx.size)
    pos = np.repeat(np.arange(owner.size), counts)
    t = start[pos] - tau[pos] * np.log1p(-u * frac[pos])
    return idx, t


def check_drift(names) -> tuple[str, ...]:
    """The drift names, or a ConfigError naming the allowed ones."""
    unknown = [name for name in names if name not in DRIFTS]
    if unknown:
        raise ConfigError(
            f"unknown drift {', '.join(map(repr, unknown))}: choose from {', '.join(DRIFTS)}"
        )
    return tuple(dict.fromkeys(names))


def _period_shares(drift: tuple[str, ...]) -> dict[str, list[float] | None]:
    """Each profile field's shares in this period (None: uniform, drawn with integers)."""
    shares: dict[str, list[float] | None] = {
        "seniority": SENIORITY_P,
        "company_size": SIZE_P,
        "industry": None,
        "country": COUNTRY_P,
        "lead_source": SOURCE_P,
    }
    for name in drift:
        if name in DRIFT_SHARES:
            shares[name] = DRIFT_SHARES[name]
    if "lead_source" in drift:
        shares["lead_source"] = [(1 - NEW_SOURCE_SHARE) * p for p in SOURCE_P] + [NEW_SOURCE_SHARE]
    return shares


def _draw(rng: np.random.Generator, k: int, n: int, p: list[float] | None) -> np.ndarray:
    return rng.integers(0, k, n) if p is None else rng.choice(k, n, p=p)


def make_crm(
    n_leads: int = 20_000,
    seed: int = 42,
    events_per_lead: float = 20.0,
    *,
    later: bool = False,
    drift: tuple[str, ...] = (),
    concept: bool = False,
    intercept: float | None = None,
) -> SynthResult:
    """Draw `n_leads` leads with their events and the true conversion probabilities.

    `later` (implied by `drift` or `concept`) draws the later period: dates shifted by
    `LATER_DAYS`, ids from `LATER_FIRST_ID`. `drift` names fields or engagement kinds
    (`DRIFTS`) to shift; `concept` changes the conversion relationship. `intercept` fixes the
    conversion intercept instead of fitting it to TARGET_RATE: drift keeps the world's
    intercept (fitted on the same period undrifted), so only the mix moves, not P(y | x).
    """
    if n_leads < 100:
        raise ConfigError(f"n_leads must be at least 100, got {n_leads}")
    drift = check_drift(drift)
    later = later or bool(drift) or concept
    if drift and intercept is None:
        world = make_crm(n_leads, seed, events_per_lead, later=True, concept=concept)
        intercept = world.meta["intercept"]
    shares = _period_shares(drift)
    sources = _values("lead_source", drift)
    source_effect = np.asarray(SOURCE_EFFECT + [0.0] * (len(sources) - len(SOURCES)))
    if concept:
        source_effect = 0.0 - source_effect  # not -x: no -0.0 in truth.json
    factor = CONCEPT_ENGAGEMENT_FACTOR if concept else 1.0
    weights = {name: w * factor for name, (_r, _l, w) in KINDS.items()}
    pricing_bonus = PRICING_LARGE_COMPANY_BONUS * factor
    rng = np.random.default_rng(seed)
    n = n_leads
    t_end = float(
        HISTORY_DAYS + HORIZON_DAYS
    )  # days since the history start; AS_OF is at HISTORY_DAYS
    t_asof = float(HISTORY_DAYS)
    created = np.sort(rng.uniform(0, t_asof - 1, n))

    seniority = _draw(rng, len(SENIORITY), n, shares["seniority"])
    dept = rng.integers(0, len(DEPARTMENTS), n)
    size = _draw(rng, len(COMPANY_SIZES), n, shares["company_size"])
    industry = _draw(rng, len(INDUSTRIES), n, shares["industry"])
    country = _draw(rng, len(COUNTRIES), n, shares["country"])
    source = _draw(rng, len(sources), n, shares["lead_source"])
    intent = rng.normal(0, 1, n) + 0.15 * (seniority <= 2) + 0.3 * (source == 2)

    # Expected lifetime volume is scaled so the average lead has ~events_per_lead events.
    base_total = sum(v[0] for name, v in KINDS.items() if name not in USAGE) * 1.18
    scale = events_per_lead / base_total
    tau = rng.lognormal(np.log(40), 0.5, n)
    has_burst = rng.random(n) < 0.35
    burst_at = created + rng.uniform(0, 1, n) * (t_end - created)
    owners = np.arange(n)
    ev_lead, ev_time, ev_kind = [], [], []
    first_trial = np.full(n, np.inf)
    for k, (name, (rate, load, _w)) in enumerate(KINDS.items()):
        mass = rate * scale * np.exp(load * intent - load**2 / 2)
        if name in drift:
            mass = mass * RATE_DRIFT[name]
        if name in USAGE:  # a trial user's product usage, from the first trial start on
            users = owners[np.isfinite(first_trial)]
            i1, t1 = _sample_times(
                rng,
                users,
                first_trial[users],
                tau[users],
                mass[users] / scale,
                np.full(users.size, t_end),
            )
            ev_lead.append(i1)
            ev_time.append(t1)
            ev_kind.append(np.full(i1.size, k))
            continue
        i1, t1 = _sample_times(rng, owners, created, tau, mass, np.full(n, t_end))
        b = owners[has_burst]
        i2, t2 = _sample_times(
            rng, b, burst_at[b], np.full(b.size, 10.0), mass[b] * 0.6, np.full(b.size, t_end)
        )
        ev_lead += [i1, i2]
        ev_time += [t1, t2]
        ev_kind += [np.full(i1.size + i2.size, k)]
        if name == "trial_start":
            np.minimum.at(first_trial, np.concatenate([i1, i2]), np.concatenate([t1, t2]))
    # one-off negative signals
    unsub = rng.random(n) < 0.07 * np.exp(-0.4 * intent)
    unsub_t = created + rng.uniform(0, 1, n) * (t_end - created)
    bounce = rng.random(n) < 0.05
    bounce_t = created + rng.uniform(0, 20, n)
    n_kinds = len(KINDS)
    for mask, times, k in (
        (unsub, unsub_t, n_kinds),
        (bounce & (bounce_t < t_end), bounce_t, n_kinds + 1),
    ):
        ev_lead.append(owners[mask])
        ev_time.append(times[mask])
        ev_kind.append(np.full(mask.sum(), k))
    lead_ix = np.concatenate(ev_lead)
    times = np.concatenate(ev_time)
    kind = np.concatenate(ev_kind)

    # Monthly snapshots (cut-offs) T_j = AS_OF - j * HORIZON_DAYS. At each one, every lead that
    # exists and has not converted yet converts within the next HORIZON_DAYS with a
    # probability that is a known function of what is observable before T_j.
    cutoffs = t_asof - HORIZON_DAYS * np.arange(N_SNAPSHOTS)
    large = size >= 3
    static = (
        np.asarray(SENIORITY_EFFECT)[seniority]
        + np.asarray(SIZE_EFFECT)[size]
        + np.asarray(INDUSTRY_EFFECT)[industry]
        + source_effect[source]
    )
    logits = np.empty((N_SNAPSHOTS, n))
    for j, cut in enumerate(cutoffs):
        age_e = cut - times
        before = (age_e > 0) & (age_e <= OBSERVATION_DAYS)
        decay = np.exp2(-age_e[before] / HALF_LIFE_DAYS)
        lj, kj = lead_ix[before], kind[before]
        logit = static.copy()
        for k, name in enumerate(KINDS):
            m = kj == k
            decayed = np.bincount(lj[m], weights=decay[m], minlength=n)
            w = weights[name]
            weight = w + pricing_bonus * large if name == "page_view:pricing" else w
            logit += weight * np.log1p(decayed)
        ever = age_e > 0
        unsub = np.bincount(lead_ix[ever & (kind == n_kinds)], minlength=n) > 0
        bounce_ = np.bincount(lead_ix[ever & (kind == n_kinds + 1)], minlength=n) > 0
        logits[j] = logit + UNSUBSCRIBE_EFFECT * unsub + BOUNCE_EFFECT * bounce_
    effects = weights | {
        "unsubscribe": UNSUBSCRIBE_EFFECT,
        "bounce": BOUNCE_EFFECT,
    }
    exists = created[None, :] < cutoffs[:, None]
    draws = rng.random((N_SNAPSHOTS, n))

    def simulate(b0: float):
        p = 1 / (1 + np.exp(-(logits + b0)))
        alive = np.ones(n, bool)
        eligible = np.zeros((N_SNAPSHOTS, n), bool)
        conv_snap = np.full(n, -1)
        for j in range(N_SNAPSHOTS - 1, -1, -1):  # oldest snapshot first
            eligible[j] = alive & exists[j]
            hit = eligible[j] & (draws[j] < p[j])
            conv_snap[hit] = j
            alive &= ~hit
        return p, eligible, conv_snap

    if intercept is None:
        lo, hi = -12.0, 6.0
        for _ in range(40):  # bisection: intercept giving TARGET_RATE per snapshot among eligible
            b0 = (lo + hi) / 2
            p, eligible, conv_snap = simulate(b0)
            rate = p[eligible].mean()
            lo, hi = (b0, hi) if rate < TARGET_RATE else (lo, b0)
    else:
        b0 = intercept
    p, eligible, conv_snap = simulate(b0)
    y = conv_snap >= 0
    converted_at = np.full(n, np.nan)
    converted_at[y] = cutoffs[conv_snap[y]] + rng.uniform(0.5, HORIZON_DAYS, y.sum())
    # converters ask for a demo shortly before buying, after the cut-off: a signal that
    # leaks into the features if the cut-off is not respected
    late = np.flatnonzero(y)
    cut_of = cutoffs[conv_snap[late]]
    lead_ix = np.concatenate([lead_ix, late])
    times = np.concatenate(
        [times, cut_of + rng.uniform(0.05, 1, late.size) * (converted_at[late] - cut_of)]
    )
    kind = np.concatenate([kind, np.full(late.size, list(KINDS).index("demo_request"))])
    snap_j, snap_i = np.nonzero(eligible)

    as_of = AS_OF + pd.Timedelta(days=LATER_DAYS if later else 0)
    start = as_of - pd.Timedelta(days=HISTORY_DAYS)

    def to_ts(d):
        return (start + pd.to_timedelta(np.round(d * 86400), unit="s")).astype("datetime64[s]")

    first_id = LATER_FIRST_ID if later else 100_001
    ids = np.arange(first_id, first_id + n)
    first = np.asarray(_FIRST)[rng.integers(0, len(_FIRST), n)]
    last = np.asarray(_LAST)[rng.integers(0, len(_LAST), n)]
    leads = pd.DataFrame(
        {
            "lead_id": ids,
            "created_at": to_ts(created),
            "first_name": first,
            "last_name": last,
            "email": [
                f"{a.lower()}.{b.lower()}{i}@example.com"
                for a, b, i in zip(first, last, ids, strict=True)
            ],
            "phone": [f"+1-555-{i % 10_000_000:07d}" for i in ids],
            "job_title": _titles(rng, seniority, dept),
            "company_size": np.asarray(COMPANY_SIZES)[size],
            "industry": np.asarray(INDUSTRIES)[industry],
            "country": np.asarray(COUNTRIES)[country],
            "lead_source": np.asarray(sources)[source],
            "converted": y.astype(int),
            "converted_at": to_ts(np.nan_to_num(converted_at)).where(~np.isnan(converted_at)),
        }
    )
    kind_names = [*KINDS, "unsubscribe", "bounce"]
    etype = np.asarray([k.split(":")[0] for k in kind_names])[kind]
    page = np.asarray([k.split(":")[1] if ":" in k else "" for k in kind_names])[kind]
    order = np.lexsort((times, lead_ix))
    keep = order[times[order] < t_end]
    events = pd.DataFrame(
        {
            "lead_id": ids[lead_ix[keep]],
            "occurred_at": to_ts(times[keep]),
            "event_type": pd.Categorical(etype[keep]),
            "page": pd.Categorical(page[keep]),
        }
    )
    truth = pd.DataFrame(
        {
            "lead_id": ids[snap_i],
            "as_of": (as_of - pd.to_timedelta(snap_j * HORIZON_DAYS, unit="D")).strftime(
                "%Y-%m-%d"
            ),
            "true_probability": p[snap_j, snap_i],
            "converted": (conv_snap[snap_i] == snap_j).astype(int),
        }
    )
    meta = {
        "seed": seed,
        "n_leads": n,
        "as_of": str(as_of.date()),
        "horizon_days": HORIZON_DAYS,
        "half_life_days": HALF_LIFE_DAYS,
        "observation_days": OBSERVATION_DAYS,
        "intercept": float(b0),
        "snapshots": N_SNAPSHOTS,
        "snapshot_conversion_rate": float(truth["converted"].mean()),
        "leads_converted": float(y.mean()),
        "effects": {
            name: {"weight": w, "direction": "+" if w > 0 else "-" if w < 0 else "0"}
            for name, w in effects.items()
        },
        "interactions": {
            "page_view:pricing": f"+{pricing_bonus} weight when company_size is 201 or more"
        },
    }
    if later:
        meta["drift"] = _drift_meta(drift, as_of, shares)
    if concept:
        meta["concept"] = _concept_meta(sources, source_effect, float(b0))
    return SynthResult(leads, events, truth, meta)


def _named_shares(values: list[str], p: list[float] | None) -> dict[str, float]:
    p = [1 / len(values)] * len(values) if p is None else p
    return {v: round(float(s), 6) for v, s in zip(values, p, strict=True)}


def _values(name: str, drift: tuple[str, ...]) -> list[str]:
    """A profile field's values in a period: lead_source drift adds the new source."""
    values = FIELD_VALUES[name]
    return [*values, NEW_SOURCE] if name == "lead_source" and name in drift else values


def _drift_meta(drift: tuple[str, ...], as_of: pd.Timestamp, shares: dict) -> dict:
    """truth.json's "drift": what moved in this later period, and what a monitor must flag."""
    today = _period_shares(())
    fields: dict[str, dict] = {}
    for name in drift:
        if name in RATE_DRIFT:
            fields[name] = {"rate_factor": RATE_DRIFT[name]}
        else:
            fields[name] = {
                "before": _named_shares(FIELD_VALUES[name], today[name]),
                "after": _named_shares(_values(name, drift), shares[name]),
            }
        fields[name] |= {"derived": DRIFT_DERIVED[name], "affected": DRIFT_AFFECTED[name]}
    derived = sorted({f for name in drift for f in DRIFT_DERIVED[name]})
    affected = sorted({f for name in drift for f in DRIFT_AFFECTED[name]} - set(derived))
    return {
        "period": "later",
        "as_of": str(as_of.date()),
        "shift_days": LATER_DAYS,
        "fields": fields,
        "derived": derived,
        "affected": affected,
    }


def _concept_meta(sources: list[str], source_effect: np.ndarray, intercept: float) -> dict:
    """truth.json's "concept": how conversion depends on the lead now, against today."""
    return {
        "lead_source_effect": {
            "before": dict(zip(SOURCES, SOURCE_EFFECT, strict=True)),
            "after": {s: float(e) for s, e in zip(sources, source_effect, strict=True)},
        },
        "engagement_weight_factor": CONCEPT_ENGAGEMENT_FACTOR,
        "engagement_weight": {
            name: {"before": w, "after": w * CONCEPT_ENGAGEMENT_FACTOR}
            for name, (_r, _l, w) in KINDS.items()
        },
        "intercept": intercept,
        "intercept_note": f"re-fitted so {TARGET_RATE:.0%} of eligible leads convert per "
        "snapshot (before any drift)",
    }


def write_crm(
    result: SynthResult, out: Path | str, fmt: str = "auto", parts: int = 1
) -> dict[str, Path]:
    """Write leads, events, truth.csv and truth.json into `out`; return the paths.

    With `parts` > 1 (Parquet only), the events are a folder `events/` of that many Parquet
    files, as a warehouse export or a Spark job writes them (the Dask engine's input)."""
    import shutil

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "auto":
        fmt = "parquet" if len(result.leads) >= 100_000 or parts > 1 else "csv"
    if fmt not in ("csv", "parquet"):
        raise ConfigError(f"format must be csv, parquet or auto, got {fmt!r}")
    if parts > 1 and fmt != "parquet":
        raise ConfigError("events in several parts are written as Parquet: pass --format parquet")
    paths = {}
    for name, frame in (("leads", result.leads), ("events", result.events)):
        for other in [
            *out.glob(f"{name}.*"),
            out / name,
        ]:  # one table, so the reader never has to choose
            if other.is_dir():
                shutil.rmtree(other)
            elif other.exists():
                other.unlink()
        if name == "events" and parts > 1:
            path = out / name
            path.mkdir()
            bounds = np.linspace(0, len(frame), parts + 1).astype(int)
            for i in range(parts):
                part = frame.iloc[bounds[i] : bounds[i + 1]]
                files.write_frame(part, path / f"part-{i:05d}.parquet")
            paths[name] = path
            continue
        path = out / f"{name}.{fmt}"
        paths[name] = files.write_frame(frame, path)
    truth_dir = out / "truth"
    truth_dir.mkdir(exist_ok=True)
    files.write_frame(result.truth, truth_dir / "truth.csv")
    files.write_text(truth_dir / "truth.json", json.dumps(result.meta, indent=2))
    paths["truth"] = truth_dir / "truth.csv"
    return paths


def read_truth(data_dir: Path | str) -> tuple[pd.DataFrame, dict] | None:
    """The truth written by `write_crm`, or None when the data is not synthetic."""
    truth_dir = Path(data_dir) / "truth"
    if not (truth_dir / "truth.csv").exists():
        return None
    return pd.read_csv(truth_dir / "truth.csv"), json.loads((truth_dir / "truth.json").read_text())
