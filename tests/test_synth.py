"""The synthetic CRM (`leadml.synth`): deterministic by seed, the input contract's shape,
a plausible conversion rate, events only of existing leads, and a truth without personal data.
The later period: dates shifted, and drift and concept change that move by what truth.json
says, seen through the real feature function (population stability index per feature)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from leadml import contract, dataset, features, privacy, synth
from leadml.cli import main
from leadml.config import TrainConfig
from leadml.errors import ConfigError
from leadml.evaluate import metrics
from leadml.fit_features import normalise_seniority

N = 600


@pytest.fixture(scope="module")
def crm() -> synth.SynthResult:
    return synth.make_crm(N, seed=5)


def test_the_same_seed_draws_the_same_data_and_another_seed_other_data(crm):
    again = synth.make_crm(N, seed=5)
    pd.testing.assert_frame_equal(crm.leads, again.leads)
    pd.testing.assert_frame_equal(crm.events, again.events)
    pd.testing.assert_frame_equal(crm.truth, again.truth)
    assert crm.meta == again.meta
    other = synth.make_crm(N, seed=6)
    assert not crm.leads["job_title"].equals(other.leads["job_title"])
    assert not crm.events.equals(other.events)


def test_leads_and_events_have_the_columns_of_the_input_contract(crm):
    leads, events = crm.leads, crm.events
    wanted = contract.LEAD_COLUMNS + contract.OUTCOME_COLUMNS + contract.PROFILE_COLUMNS
    assert set(wanted) <= set(leads.columns)
    assert set(contract.EVENT_COLUMNS) <= set(events.columns) and "page" in events
    assert len(leads) == N and leads["lead_id"].is_unique
    assert set(events["event_type"].unique()) <= set(contract.EVENT_TYPES)
    pages = set(events.loc[events["event_type"] == "page_view", "page"].unique())
    assert pages <= set(contract.PAGE_KINDS)
    assert (events.loc[events["event_type"] != "page_view", "page"] == "").all()


def test_fewer_than_100_leads_is_refused():
    with pytest.raises(ValueError, match="at least 100"):
        synth.make_crm(99)


def test_every_lead_is_created_before_the_snapshot_and_converts_after_it_was_created(crm):
    leads = crm.leads
    assert (leads["created_at"] < synth.AS_OF).all()
    won = leads["converted"] == 1
    assert leads.loc[won, "converted_at"].notna().all()
    assert leads.loc[~won, "converted_at"].isna().all()
    assert (leads.loc[won, "converted_at"] > leads.loc[won, "created_at"]).all()
    horizon_end = synth.AS_OF + pd.Timedelta(days=synth.HORIZON_DAYS)
    assert (leads.loc[won, "converted_at"] <= horizon_end).all()


def test_the_conversion_rate_is_near_the_target_and_the_truth_is_a_probability(crm):
    rate = crm.meta["snapshot_conversion_rate"]
    assert abs(rate - synth.TARGET_RATE) < 0.05, rate
    p = crm.truth["true_probability"]
    assert ((p > 0) & (p < 1)).all()
    assert abs(p.mean() - rate) < 0.03  # the truth explains the outcomes it drew
    assert 0 < crm.meta["leads_converted"] < 1


def test_events_belong_to_existing_leads_and_fall_between_creation_and_horizon(crm):
    events = crm.events.merge(crm.leads[["lead_id", "created_at"]], on="lead_id", how="left")
    assert events["created_at"].notna().all()  # no event without its lead
    assert (events["occurred_at"] >= events["created_at"]).all()
    assert (events["occurred_at"] < synth.AS_OF + pd.Timedelta(days=synth.HORIZON_DAYS)).all()
    keys = list(zip(events["lead_id"], events["occurred_at"], strict=True))
    assert keys == sorted(keys)  # by lead, then time


def test_converters_request_a_demo_between_their_cut_off_and_their_conversion(crm):
    """The planted leak: a feature function that ignores the cut-off sees these requests."""
    won = crm.leads[crm.leads["converted"] == 1]
    demos = crm.events[crm.events["event_type"] == "demo_request"]
    late = demos.merge(won[["lead_id", "converted_at"]], on="lead_id")
    before = late["occurred_at"] < late["converted_at"]
    window = late["converted_at"] - late["occurred_at"] < pd.Timedelta(days=synth.HORIZON_DAYS)
    assert set(late.loc[before & window, "lead_id"]) == set(won["lead_id"])


def test_the_truth_is_about_leads_that_existed_at_each_snapshot(crm):
    truth = crm.truth.merge(crm.leads[["lead_id", "created_at"]], on="lead_id")
    assert len(truth) == len(crm.truth)
    assert (truth["created_at"] < pd.to_datetime(truth["as_of"])).all()
    assert set(crm.truth["as_of"]) <= {
        str((synth.AS_OF - pd.Timedelta(days=synth.HORIZON_DAYS * j)).date())
        for j in range(synth.N_SNAPSHOTS)
    }


def test_written_data_reads_back_without_rejects_and_its_truth_holds_no_personal_data(
    crm, tmp_path
):
    paths = synth.write_crm(crm, tmp_path, "csv")
    assert paths["leads"].name == "leads.csv" and paths["events"].name == "events.csv"
    data = dataset.load_crm(tmp_path)
    assert len(data.leads) == N and len(data.rejects) == 0
    assert data.read == {"leads": N, "events": len(crm.events)}
    truth, meta = synth.read_truth(tmp_path)
    assert list(truth.columns) == ["lead_id", "as_of", "true_probability", "converted"]
    assert meta == json.loads(json.dumps(crm.meta))
    # the leads carry names, emails and phones on purpose (to test privacy); the truth not
    assert privacy.looks_personal(crm.leads["email"].iloc[0])
    texts = [(tmp_path / "truth" / f).read_text() for f in ("truth.csv", "truth.json")]
    for value in (crm.leads["email"].iloc[0], crm.leads["phone"].iloc[0], "@"):
        assert all(value not in text for text in texts)


def test_rewriting_in_another_format_leaves_one_file_per_table(crm, tmp_path):
    synth.write_crm(crm, tmp_path, "csv")
    synth.write_crm(crm, tmp_path, "parquet", parts=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events", "leads.parquet", "truth"]
    parts = sorted((tmp_path / "events").iterdir())
    assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(3)]
    events = pd.concat(pd.read_parquet(p) for p in parts)
    assert len(events) == len(crm.events)
    np.testing.assert_array_equal(events["lead_id"], crm.events["lead_id"])


def test_events_in_parts_need_parquet_and_a_known_format(crm, tmp_path):
    with pytest.raises(ValueError, match="--format parquet"):
        synth.write_crm(crm, tmp_path, "csv", parts=2)
    with pytest.raises(ValueError, match="csv, parquet or auto"):
        synth.write_crm(crm, tmp_path, "xlsx")


def test_a_folder_without_a_truth_is_not_synthetic(tmp_path):
    assert synth.read_truth(tmp_path) is None


# --- the later period: same world, dates shifted, known drift and concept change ---

LATER_N = 3000
SHIFT = pd.Timedelta(days=synth.LATER_DAYS)


def _load(result: synth.SynthResult, out) -> dataset.LeadData:
    synth.write_crm(result, out, "csv")
    return dataset.load(out)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Today's data, the feature spec a model trained on it would have, and its features."""
    data = _load(synth.make_crm(LATER_N, seed=1), tmp_path_factory.mktemp("reference"))
    spec = features.fit_spec(data, TrainConfig())
    return data, spec, features.build_features(data.leads, data.events, spec, synth.AS_OF).X


def _later_features(tmp_path, spec, **kwargs) -> tuple[synth.SynthResult, pd.DataFrame]:
    result = synth.make_crm(LATER_N, seed=2, **kwargs)
    data = _load(result, tmp_path)
    as_of = pd.Timestamp(result.meta["as_of"])
    return result, features.build_features(data.leads, data.events, spec, as_of=as_of).X


def psi(before: np.ndarray, after: np.ndarray, categorical: bool) -> float:
    """Population stability index: categories (missing and unseen values their own bins), or
    numbers in ten bins at the reference's deciles (ties merged, so a mostly-zero count
    has a zero bin)."""
    if categorical:
        bins = np.union1d(before, after)  # NaN sorts last and stays one bin
        b = np.array([np.mean((before == v) | (np.isnan(before) & np.isnan(v))) for v in bins])
        a = np.array([np.mean((after == v) | (np.isnan(after) & np.isnan(v))) for v in bins])
    else:
        edges = np.unique(np.nanquantile(before, np.linspace(0, 1, 11)[1:-1]))
        ib = np.where(np.isnan(before), -1, np.searchsorted(edges, before))
        ia = np.where(np.isnan(after), -1, np.searchsorted(edges, after))
        bins = np.union1d(ib, ia)
        b = np.array([np.mean(ib == v) for v in bins])
        a = np.array([np.mean(ia == v) for v in bins])
    b, a = np.clip(b, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - b) * np.log(a / b)))


def _psi_all(spec, before: pd.DataFrame, after: pd.DataFrame) -> dict[str, float]:
    return {
        c: psi(before[c].to_numpy(), after[c].to_numpy(), c in spec.categorical)
        for c in spec.feature_names
    }


def test_no_new_arguments_draw_what_the_defaults_draw(crm):
    explicit = synth.make_crm(N, seed=5, later=False, drift=(), concept=False, intercept=None)
    for name in ("leads", "events", "truth"):
        pd.testing.assert_frame_equal(getattr(crm, name), getattr(explicit, name))
    assert crm.meta == explicit.meta
    assert "drift" not in crm.meta and "concept" not in crm.meta


def _ns(times: pd.Series) -> pd.Series:
    return times.astype("datetime64[ns]")


def test_the_later_period_is_the_same_world_with_every_date_shifted(crm):
    """Same seed, later period: the same leads, events and true probabilities, 91 days on,
    under new ids (so the score store never mixes them with today's leads)."""
    later = synth.make_crm(N, seed=5, later=True)
    assert later.meta["as_of"] == str((synth.AS_OF + SHIFT).date()) == "2026-09-29"
    offset = synth.LATER_FIRST_ID - int(crm.leads["lead_id"].iloc[0])
    assert (later.leads["lead_id"] == crm.leads["lead_id"] + offset).all()
    for col in ("created_at", "converted_at"):
        pd.testing.assert_series_equal(_ns(later.leads[col]), _ns(crm.leads[col] + SHIFT))
    for col in ("job_title", "company_size", "industry", "country", "lead_source", "converted"):
        pd.testing.assert_series_equal(later.leads[col], crm.leads[col])
    pd.testing.assert_series_equal(
        _ns(later.events["occurred_at"]), _ns(crm.events["occurred_at"] + SHIFT)
    )
    assert (later.events["lead_id"] == crm.events["lead_id"] + offset).all()
    shifted = (pd.to_datetime(crm.truth["as_of"]) + SHIFT).dt.strftime("%Y-%m-%d")
    pd.testing.assert_series_equal(later.truth["as_of"], shifted)
    np.testing.assert_array_equal(later.truth["true_probability"], crm.truth["true_probability"])
    drift = later.meta["drift"]
    assert drift["period"] == "later" and drift["shift_days"] == synth.LATER_DAYS
    assert drift["as_of"] == later.meta["as_of"]
    assert drift["fields"] == {} and drift["derived"] == [] and drift["affected"] == []


def test_an_undrifted_later_period_has_todays_mix(reference, tmp_path):
    data, spec, before = reference
    later, after = _later_features(tmp_path, spec, later=True)
    for field in ("company_size", "industry", "country", "lead_source"):
        shares = data.leads[field].value_counts(normalize=True)
        again = later.leads[field].value_counts(normalize=True)
        assert (shares - again).abs().max() < 0.03, field
    moved = {c: round(v, 3) for c, v in _psi_all(spec, before, after).items() if v >= 0.05}
    assert moved == {}


def test_drift_names_only_features_a_trained_model_has(reference):
    _, spec, _ = reference
    named = {f for name in synth.DRIFTS for f in synth.DRIFT_DERIVED[name]}
    named |= {f for name in synth.DRIFTS for f in synth.DRIFT_AFFECTED[name]}
    assert named - set(spec.feature_names) == set()
    assert set(synth.DRIFT_DERIVED) == set(synth.DRIFT_AFFECTED) == set(synth.DRIFTS)


def _observed_shares(leads: pd.DataFrame, name: str) -> pd.Series:
    if name == "seniority":  # drawn as a level, seen through the job title
        levels = normalise_seniority(leads["job_title"])
        return levels[levels != "Unknown"].value_counts(normalize=True)
    return leads[name].value_counts(normalize=True)


@pytest.mark.parametrize("name", synth.DRIFTS)
def test_a_drifted_field_moves_by_what_the_truth_says_and_nothing_else_does(
    name, reference, tmp_path
):
    data, spec, before = reference
    later, after = _later_features(tmp_path, spec, drift=(name,))
    truth = json.loads((tmp_path / "truth" / "truth.json").read_text())["drift"]
    field = truth["fields"][name]
    assert list(truth["fields"]) == [name] and truth["derived"] == field["derived"]
    if "rate_factor" in field:  # an engagement kind: events per lead, against today's
        kind = later.events["event_type"] == name
        today = data.events["event_type"] == name
        assert abs(kind.sum() / today.sum() / field["rate_factor"] - 1) < 0.2
    else:
        for leads, shares in ((data.leads, field["before"]), (later.leads, field["after"])):
            seen = _observed_shares(leads, name)
            for value, share in shares.items():
                assert abs(seen.get(value, 0.0) - share) < 0.03, (value, share)
    moved = _psi_all(spec, before, after)
    assert {f: moved[f] >= 0.25 for f in field["derived"]} == dict.fromkeys(
        field["derived"], True
    ), moved
    unlisted = set(spec.feature_names) - set(field["derived"]) - set(field["affected"])
    assert {f: round(moved[f], 3) for f in unlisted if moved[f] >= 0.05} == {}


def test_drift_moves_the_mix_not_how_conversion_depends_on_the_lead():
    plain = synth.make_crm(LATER_N, seed=2, later=True)
    drifted = synth.make_crm(LATER_N, seed=2, drift=("company_size", "lead_source"))
    assert drifted.meta["intercept"] == plain.meta["intercept"]
    assert drifted.meta["effects"] == plain.meta["effects"]
    assert "concept" not in drifted.meta
    # more small companies (negative effect), so fewer conversions than in the plain period
    assert drifted.meta["snapshot_conversion_rate"] < plain.meta["snapshot_conversion_rate"]
    partner = drifted.leads["lead_source"] == synth.NEW_SOURCE
    assert abs(partner.mean() - synth.NEW_SOURCE_SHARE) < 0.03
    assert set(drifted.meta["drift"]["derived"]) == {"company_size", "lead_source"}


def test_a_concept_change_costs_the_old_truth_auc_as_recorded(tmp_path):
    """The same leads under both worlds: today's true probabilities rank the later outcomes
    worse than the later world's own do, and worse than they ranked today's outcomes."""
    old = synth.make_crm(LATER_N, seed=2, later=True)
    new = synth.make_crm(LATER_N, seed=2, concept=True)
    synth.write_crm(new, tmp_path, "csv")
    concept = json.loads((tmp_path / "truth" / "truth.json").read_text())["concept"]
    sources = concept["lead_source_effect"]
    assert {s: -e for s, e in sources["before"].items()} == sources["after"]
    factor = concept["engagement_weight_factor"]
    assert 0 < factor < 1
    for kind, w in concept["engagement_weight"].items():
        assert w["after"] == w["before"] * factor == new.meta["effects"][kind]["weight"]
        assert w["before"] == old.meta["effects"][kind]["weight"]
    assert abs(new.meta["snapshot_conversion_rate"] - synth.TARGET_RATE) < 0.03
    both = old.truth.merge(new.truth, on=["lead_id", "as_of"], suffixes=("_old", "_new"))
    assert len(both) > 0.8 * len(new.truth)
    y_old, y_new = both["converted_old"].to_numpy(), both["converted_new"].to_numpy()
    p_old, p_new = both["true_probability_old"].to_numpy(), both["true_probability_new"]
    stale = metrics(y_new, p_old)["roc_auc"]
    assert stale < metrics(y_new, p_new.to_numpy())["roc_auc"] - 0.02
    assert stale < metrics(y_old, p_old)["roc_auc"] - 0.05


def test_an_unknown_drift_name_is_refused_naming_the_allowed_ones():
    with pytest.raises(ConfigError, match="unknown drift 'budget'") as err:
        synth.make_crm(200, drift=("company_size", "budget"))
    assert all(name in str(err.value) for name in synth.DRIFTS)


def test_synth_later_from_the_command_line(home, capsys):
    out = home / "later"
    argv = ["-q", "synth", "--out", str(out), "--leads", "500", "--seed", "2"]
    assert main([*argv, "--drift", "country, webinar", "--concept"]) == 0
    printed = capsys.readouterr().out
    assert "drifted country" in printed and "region" in printed and "concept change" in printed
    truth = json.loads((out / "truth" / "truth.json").read_text())
    assert list(truth["drift"]["fields"]) == ["country", "webinar"] and "concept" in truth
    leads = pd.read_csv(out / "leads.csv", parse_dates=["created_at"])
    assert (leads["created_at"] < synth.AS_OF + SHIFT).all()
    assert (leads["created_at"] >= synth.AS_OF + SHIFT - pd.Timedelta(days=360)).all()
    assert main([*argv, "--drift", "budget"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "budget" in err[0] and "company_size" in err[0]


def test_synth_help_states_the_later_period_and_every_drift(capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{synth.LATER_DAYS} days on" in text
    assert str((synth.AS_OF + SHIFT).date()) in text and str(synth.LATER_FIRST_ID) in text
    assert all(name in text for name in synth.DRIFTS)
    assert f"'{synth.NEW_SOURCE}'" in text and f"{synth.NEW_SOURCE_SHARE:.0%}" in text
    assert f"{synth.RATE_DRIFT['webinar']:g}x the rate" in text and "truth.json" in text


def _model_on(scorer, result: synth.SynthResult, out) -> tuple[np.ndarray, np.ndarray]:
    """The model's probabilities and the outcomes of the leads eligible at the period's cut-off."""
    data = _load(result, out)
    X = features.build_features(data.leads, data.events, scorer.spec, result.meta["as_of"])
    p = pd.Series(scorer.probability(X.X), index=pd.Index(X.ids).astype(str))
    truth = result.truth[result.truth["as_of"] == result.meta["as_of"]]
    return truth["converted"].to_numpy(), p.loc[truth["lead_id"].astype(str)].to_numpy()


@pytest.mark.slow
def test_a_model_trained_today_loses_auc_and_its_top_leads_convert_less_after_a_concept_change(
    tmp_path,
):
    from leadml.train import fit

    synth.write_crm(synth.make_crm(LATER_N, seed=1), tmp_path / "ref", "csv")
    trained, _ = fit(tmp_path / "ref", TrainConfig.model_validate({"model": {"baseline": False}}))
    named = set(synth.DRIFT_DERIVED["webinar"]) | set(synth.DRIFT_AFFECTED["seniority"])
    assert named <= set(trained.scorer.spec.feature_names)
    plain = _model_on(trained.scorer, synth.make_crm(LATER_N, seed=2, later=True), tmp_path / "a")
    changed = _model_on(
        trained.scorer, synth.make_crm(LATER_N, seed=2, concept=True), tmp_path / "b"
    )
    (y0, p0), (y1, p1) = plain, changed
    assert metrics(y1, p1)["roc_auc"] < metrics(y0, p0)["roc_auc"] - 0.03
    top0, top1 = p0 >= np.quantile(p0, 0.8), p1 >= np.quantile(p1, 0.8)
    assert abs(y1.mean() - y0.mean()) < 0.03  # the same conversion rate: the top just ranks worse
    assert y1[top1].mean() < y0[top0].mean() - 0.04
