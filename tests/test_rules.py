"""Point rules: parsing and its errors, firing, caps, decay, verdicts (fast, no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadml import rules

FIELDS = [
    "job_title",
    "company_size",
    "industry",
    "pricing_view_30d",
    "email_open_30d",
    "email_click_30d",
    "unsubscribed",
    "seniority",
    "days_since_pricing_view",
    "Do Not Call",
]
GOOD = """\
thresholds:
  mql: 40
  sql: 70
groups:
  email: {cap: 12}
rules:
  - name: Pricing page
    field: pricing_view_30d
    op: ">="
    value: 1
    points: 10
    decay_days: 7
  - name: Opens
    group: email
    field: email_open_30d
    op: between
    value: [1, 100]
    points: 8
  - name: Clicks
    group: email
    field: email_click_30d
    op: ">="
    value: 1
    points: 8
  - name: VP
    field: job_title
    op: contains
    value: [vp, vice president]
    points: 15
  - name: Big company
    field: company_size
    op: in
    value: [201-1000, 5000+]
    points: 5
  - name: Not retail
    field: industry
    op: "!="
    value: Retail
    points: 2
  - name: Unsubscribed
    field: unsubscribed
    op: ==
    value: yes
    points: -20
"""


def write(tmp_path, text: str):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_sample_rules_files_load(tmp_path):
    ruleset = rules.load_rules(write(tmp_path, GOOD), FIELDS)
    assert [r.name for r in ruleset.rules][:2] == ["Pricing page", "Opens"]
    assert (ruleset.mql, ruleset.sql, ruleset.caps) == (40, 70, {"email": 12})
    assert ruleset.rules[0].line == 7 and ruleset.rules[0].decay_days == 7
    sample = Path(__file__).resolve().parents[1] / "data" / "rules" / "sample_rules.yaml"
    assert rules.load_rules(sample).rules  # the shipped sample parses


@pytest.mark.parametrize(
    "change, words",
    [
        (
            ("field: job_title", "field: job_titel"),
            ["line 26,", "'VP'", "unknown field 'job_titel'", "did you mean job_title"],
        ),
        (("op: contains", "op: like"), ["line 27,", "'VP'", "unknown operator 'like'", "contains"]),
        (("value: [1, 100]", "value: 1"), ["line 17,", "'Opens'", "between needs two numbers"]),
        (("points: 15", "points: lots"), ["line 29,", "'VP'", "points must be a number"]),
        (
            ("group: email\n    field: email_click", "group: sms\n    field: email_click"),
            ["'Clicks'", "group 'sms' has no cap"],
        ),
        (("    decay_days: 7\n", "    decay_days: 7\n    \n"), []),
        (("  mql: 40", "  mql: 80"), ["thresholds", "sql >= mql"]),
        (("- name: VP\n", "- name: VP\n   bad: [\n"), ["not valid YAML", "line"]),
    ],
)
def test_rule_errors_name_the_rule_and_line(tmp_path, change, words):
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    if not words:  # harmless change: still loads
        assert rules.load_rules(path, FIELDS)
        return
    with pytest.raises(rules.RulesError) as err:
        rules.load_rules(path, FIELDS)
    for w in words:
        assert w in str(err.value), str(err.value)


def test_decay_only_on_activity_fields(tmp_path):
    text = GOOD.replace("    points: 15\n", "    points: 15\n    decay_days: 10\n")
    with pytest.raises(rules.RulesError, match="'VP'.*decay_days needs an activity field"):
        rules.load_rules(write(tmp_path, text), FIELDS)


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pricing_view_30d": [2.0, 0.0, 1.0, 1.0],
            "days_since_pricing_view": [0.0, 180.0, 7.0, 14.0],
            "email_open_30d": [3.0, 0.0, 150.0, 1.0],
            "email_click_30d": [1.0, 0.0, 0.0, 1.0],
            "job_title": ["VP Sales", "Vice President, Ops", None, "Developer"],
            "company_size": ["201-1000", "11-50", "5000+ ", None],
            "industry": ["Retail", "Software", None, "retail"],
            "unsubscribed": [0.0, 1.0, 0.0, 0.0],
        }
    )


def test_each_operator_fires_where_it_should(tmp_path, table):
    ruleset = rules.load_rules(write(tmp_path, GOOD), FIELDS)
    M = rules.rule_matrix(ruleset, table)
    by = {r.name: M[:, j] for j, r in enumerate(ruleset.rules)}
    assert list(by["Opens"]) == [1, 0, 0, 1]  # between 1 and 100, inclusive
    assert list(by["Clicks"]) == [1, 0, 0, 1]
    assert list(by["VP"]) == [1, 1, 0, 0]  # contains, any word, case-insensitive
    assert list(by["Big company"]) == [1, 0, 1, 0]  # in, spaces ignored
    assert list(by["Not retail"]) == [0, 1, 0, 0]  # != never fires on a missing value
    assert list(by["Unsubscribed"]) == [0, 1, 0, 0]  # yes == 1 on a binary field


def test_decay_halves_the_points_every_decay_days(tmp_path, table):
    ruleset = rules.load_rules(write(tmp_path, GOOD), FIELDS)
    pricing = rules.fires(ruleset.rules[0], table)
    assert pricing == pytest.approx([1.0, 0.0, 0.5, 0.25])


def test_group_caps_and_total_points(tmp_path, table):
    ruleset = rules.load_rules(write(tmp_path, GOOD), FIELDS)
    M = rules.rule_matrix(ruleset, table)
    total = rules.score(ruleset, M)
    # lead 0: pricing 10 + email min(8+8, 12) + VP 15 + big 5 = 42; lead 1: VP 15 + not retail 2 - 20
    assert total[0] == pytest.approx(42) and total[1] == pytest.approx(-3)
    # lead 2: pricing decayed 5 + big 5; lead 3: pricing 2.5 + email min(16, 12)
    assert total[2] == pytest.approx(10) and total[3] == pytest.approx(14.5)
    assert list(rules.band(np.array([80, 40, 39.9]), ruleset)) == ["SQL", "MQL", "Unqualified"]


def test_learned_points_recover_known_weights_on_the_marketers_scale(tmp_path):
    """Simulated outcomes with known log-odds per rule: the refit gets the order and signs,
    and a learned score at the MQL threshold means what a manual score there means."""
    rng = np.random.default_rng(0)
    n = 20_000
    ruleset = rules.load_rules(write(tmp_path, GOOD), FIELDS)
    M = (rng.random((n, len(ruleset.rules))) < 0.3).astype(float)
    true = np.array([1.2, 0.4, 0.4, 0.8, 0.0, 0.2, -1.5])
    y = (rng.random(n) < 1 / (1 + np.exp(-(-2 + M @ true)))).astype(float)
    learned = rules.learn_points(ruleset, M, y)
    assert np.all(np.sign(learned.points[true != 0]) == np.sign(true[true != 0]))
    assert abs(learned.points[4]) < 3 and learned.low[4] < 0 < learned.high[4]
    assert np.argmax(learned.points) == 0 and np.argmin(learned.points) == 6
    assert np.all(learned.low <= learned.points) and np.all(learned.points <= learned.high)
    assert learned.points / learned.scale == pytest.approx(learned.model.coef_[0])


@pytest.mark.parametrize(
    "manual, learned, low, high, fires, expected",
    [
        (10, 22.7, 21.5, 24.2, 1000, "under-weighted"),
        (25, 11.5, 9.8, 13.2, 1000, "over-weighted"),
        (5, 5.9, 4.7, 6.9, 1000, "about right"),
        (-10, -44.0, -47.2, -41.7, 1000, "under-weighted"),  # the penalty should be bigger
        (-5, 11.3, 9.0, 13.0, 1000, "over-weighted"),  # a penalty where the rule helps
        (30, 2.0, -20, 25, 12, "no evidence"),
    ],
)
def test_verdicts(manual, learned, low, high, fires, expected):
    assert rules.verdict(manual, learned, low, high, fires) == expected


def test_suggested_rules_file_round_trips(tmp_path, table):
    ruleset = rules.load_rules(write(tmp_path, GOOD), FIELDS)
    rng = np.random.default_rng(1)
    M = (rng.random((3000, len(ruleset.rules))) < 0.4).astype(float)
    y = (rng.random(3000) < 0.2 + 0.3 * M[:, 0]).astype(float)
    learned = rules.learn_points(ruleset, M, y)
    text = rules.suggested_yaml(ruleset, learned, ["about right"] * len(ruleset.rules))
    again = rules.load_rules(write(tmp_path, text), FIELDS)
    assert [r.name for r in again.rules] == [r.name for r in ruleset.rules]
    assert [r.points for r in again.rules] == [round(float(p)) for p in learned.points]
    assert again.caps == ruleset.caps and again.rules[0].decay_days == 7
