"""What each `leadml` command does: turn its parsed options into one library call and print
the outcome. `cli.py` declares the options and catches errors; this module imports the
library lazily, inside each command, so `leadml --help` never pays for pandas or LightGBM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leadml.errors import ConfigError, ModelError, NotFoundError, PromotionError

if TYPE_CHECKING:
    from leadml.engine import Engine


def quiet_libraries(verbose: bool) -> None:
    """Environment and logging for the libraries the commands import later."""
    # MLflow reads these when it is first imported (only leadml.tracking imports it)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # LightGBM's OpenMP threads spin while they wait; on a shared 2-core machine that made
    # boosting 3x slower whenever anything else ran (benchmarks/RESULTS.md, contention).
    # Read when LightGBM is first imported, which the subcommands do lazily.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Dask sets its own log levels when imported; its shuffle logs routine steps as warnings
    if not verbose:
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    warnings.filterwarnings("ignore", module=r"mlflow\..*")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("mlflow", "alembic", "urllib3", "distributed"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _settings(args: argparse.Namespace) -> Any:
    """Settings from the environment; `--name` picks another registered model."""
    from leadml.config import Settings

    return Settings.from_env().for_model(getattr(args, "name", None))


def _config(args: argparse.Namespace) -> Any:
    """The training config: --config's YAML, then the input and flat-export options on top."""
    from leadml.config import TrainConfig

    cfg = TrainConfig.from_yaml(args.config)
    given = {"date_format": args.date_format, "max_reject_share": args.max_reject_share}
    cfg = cfg.with_changes({"input": {k: v for k, v in given.items() if v is not None}})
    drop = [c.strip() for c in args.drop.split(",") if c.strip()] if args.drop else None
    given = {"target": args.target, "id_column": args.id, "drop": drop, "sep": args.sep}
    flat = cfg.flat.model_copy(update={k: v for k, v in given.items() if v is not None})
    return cfg.model_copy(update={"flat": flat})


@contextlib.contextmanager
def _engine(args: argparse.Namespace) -> Iterator[Engine | None]:
    """None for the in-memory engine; a connected DaskEngine for --engine dask."""
    if args.engine != "dask":
        if args.scheduler or args.dask_workers:
            raise ConfigError("--scheduler and --dask-workers need --engine dask")
        yield None
        return
    from leadml.config import Environment
    from leadml.dask_engine import DaskEngine

    scheduler = args.scheduler or Environment().dask_scheduler
    with DaskEngine.connect(scheduler, args.dask_workers) as engine:
        where = scheduler or "a local cluster"
        print(f"dask: {engine.workers} worker(s) on {where}", flush=True)
        yield engine


def synth(args: argparse.Namespace) -> int:
    from leadml import synth
    from leadml.progress import Stages

    if args.parts > 1 and args.format == "csv":
        raise ConfigError("events in several parts are written as Parquet: pass --format parquet")
    t0 = time.perf_counter()
    steps = Stages(2, progress=not args.quiet)
    steps.next("generating leads and events")
    result = synth.make_crm(
        args.leads, args.seed, later=args.later, drift=args.drift, concept=args.concept
    )
    steps.next("writing files")
    paths = synth.write_crm(result, args.out, args.format, args.parts)
    steps.close()
    m = result.meta
    print(
        f"wrote {len(result.leads):,} leads and {len(result.events):,} events to {args.out} "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    print(
        f"  cut-off {m['as_of']}, {m['snapshots']} monthly snapshots, conversion within "
        f"{m['horizon_days']} days: {m['snapshot_conversion_rate']:.1%} of eligible leads"
    )
    print(f"  truth (true probabilities and effects): {paths['truth'].parent}")
    if "drift" in m:
        _print_drift(m)
    return 0


def _print_drift(meta: dict) -> None:
    """What the later period changed, in the words truth.json uses."""
    drift = meta["drift"]
    print(f"  later period: every date {drift['shift_days']} days on")
    for name, field in drift["fields"].items():
        if "rate_factor" in field:
            moved = f"{field['rate_factor']:g}x the rate"
        else:
            before, after = field["before"], field["after"]
            moved = ", ".join(
                f"{v} {before.get(v, 0):.0%}->{after[v]:.0%}"
                for v in after
                if abs(after[v] - before.get(v, 0)) >= 0.05
            )
        print(f"  drifted {name}: {moved}; a monitor must flag {', '.join(field['derived'])}")
    if not drift["fields"]:
        print("  no drift: the same mix of leads as today")
    if "concept" in meta:
        factor = meta["concept"]["engagement_weight_factor"]
        print(
            f"  concept change: lead_source effects reversed, engagement weights x{factor:g}, "
            "intercept re-fitted"
        )


def train(args: argparse.Namespace) -> int:
    from leadml import report
    from leadml.train import train

    settings = _settings(args)
    cfg = _config(args)
    t0 = time.perf_counter()
    with _engine(args) as engine:
        result = train(
            args.data,
            cfg,
            settings,
            progress=not args.quiet,
            register=not args.no_register,
            engine=engine,
        )
    report.print_train_report(result, settings)
    print(f"\ntrained in {time.perf_counter() - t0:.1f}s")
    return 0


def score(args: argparse.Namespace) -> int:
    from leadml import report
    from leadml.dataset import MAX_REJECT_SHARE, ReadOptions
    from leadml.score import check_paths, score_file

    check_paths(args.data, args.out)  # before anything is read or loaded
    settings = _settings(args)
    share = MAX_REJECT_SHARE if args.max_reject_share is None else args.max_reject_share
    options = ReadOptions(sep=args.sep, date_format=args.date_format, max_reject_share=share)
    t0 = time.perf_counter()
    kept: list[int] = []
    with _engine(args) as engine:
        s = score_file(
            args.data,
            args.out,
            settings,
            args.model,
            options,
            args.as_of,
            engine,
            _keeper(settings, kept),
            args.reasons,
        )
    print(
        f"scored {s.scored:,} of {s.rows_in:,} leads with {s.model} in {time.perf_counter() - t0:.1f}s"
        + (f" (as of {s.as_of})" if s.as_of else "")
    )
    report.print_input(s.tables, s.notes, s.rejects_path)
    print("bands: " + ", ".join(f"{b} {n:,}" for b, n in sorted(s.bands.items())))
    print(f"output: {s.out_path}")
    if kept:
        what = "with their reasons" if args.reasons else "without reasons (--reasons)"
        print(f"score store: {sum(kept):,} scores kept, {what} (leadml history LEAD_ID)")
    return 0


def _keeper(settings: Any, kept: list[int]) -> Any:
    """`leadml score`'s hook into the score store, called after the output file is written
    (by the Dask engine once per partition); None when the store is off. A store that cannot
    take the scores is one warning line and the rest are not tried: the scores file is
    written already."""
    from leadml.config import StoreSettings

    store_settings = StoreSettings.from_env(settings.home)
    url = store_settings.store_url
    if url is None:
        return None
    opened: list[Any] = []  # the store, opened (and migrated) once; False after a failure

    def keep(scored: Any) -> None:
        from leadml.recorder import error_words, record_now
        from leadml.store import ScoreStore

        if opened == [False]:
            return
        try:
            if not opened:
                opened.append(ScoreStore(url))
            kept.append(record_now(opened[0], scored, store_settings.webhook_urls))
        except Exception as exc:
            opened[:] = [False]
            print(
                f"warning: scores not kept in the score store ({error_words(exc)})"
                + (f"; {sum(kept):,} were kept before that" if kept else ""),
                file=sys.stderr,
            )

    return keep


def _open_store(settings: Any) -> Any:
    """The score store of these settings; ConfigError when it is off."""
    from leadml.config import StoreSettings
    from leadml.store import ScoreStore

    url = StoreSettings.from_env(settings.home).store_url
    if url is None:
        raise ConfigError("the score store is off (LEADML_STORE_URL=off): no scores are kept")
    return ScoreStore(url)


def history(args: argparse.Namespace) -> int:
    from leadml import history, report

    store = _open_store(_settings(args))
    entries = store.history(args.lead_id, args.limit)
    if not entries:
        raise NotFoundError(
            f"no score kept for lead {args.lead_id!r}: it was never scored with an id, or its "
            "scores were pruned (LEADML_STORE_RETENTION_DAYS)"
        )
    report.print_history(history.describe(args.lead_id, entries))
    return 0


def store_prune(args: argparse.Namespace) -> int:
    from leadml.config import StoreSettings

    settings = _settings(args)
    days = args.days or StoreSettings.from_env(settings.home).store_retention_days
    if days is None:
        raise ConfigError(
            "no retention set: pass --days N or set LEADML_STORE_RETENTION_DAYS (scores older "
            "than that many days are deleted)"
        )
    gone = _open_store(settings).prune(days)
    print(f"score store: {gone:,} scores older than {days} days deleted")
    return 0


def promote(args: argparse.Namespace) -> int:
    from leadml import tracking

    settings = _settings(args)
    version = args.version or tracking.alias_version(settings, tracking.CHALLENGER)
    if version is None:
        raise PromotionError(
            f"no version given and no challenger alias on model {settings.model_name!r}; "
            "train first or pass --version"
        )
    path = tracking.promote(settings, version, force=args.force)
    print(f"{settings.model_name} v{version} is now champion; exported to {path}")
    return 0


def rollback(args: argparse.Namespace) -> int:
    from leadml import tracking

    settings = _settings(args)
    was, now, path = tracking.rollback(settings)
    print(
        f"{settings.model_name} v{now} is champion again (was v{was}); exported to {path}. "
        f"A running service picks it up at its next reload; `leadml rollback` again returns to v{was}"
    )
    return 0


def retrain(args: argparse.Namespace) -> int:
    """Exit 0 promoted, 1 champion kept, 3 not enough matured data (see `leadml retrain -h`)."""
    from leadml.config import TrainConfig
    from leadml.retrain import retrain

    settings = _settings(args)
    done = retrain(
        args.data,
        TrainConfig.from_yaml(args.config),
        settings,
        tolerance=args.tolerance,
        dry_run=args.dry_run,
        progress=not args.quiet,
    )
    print(f"{settings.model_name}: {done.sentence}")
    if done.dry_run:
        print("dry run: nothing registered, promoted or written")
    elif done.report_path is not None:
        print(f"why: {done.report_path} (and {done.report_path.parent / 'latest.json'})")
    return done.exit_code


def _workers(args: argparse.Namespace) -> int:
    """--workers, else LEADML_WORKERS, else 2 (one per core here)."""
    from leadml.config import ServeSettings

    return int(args.workers) if args.workers is not None else ServeSettings.from_env().workers


def _check_port_free(host: str, port: int) -> None:
    """Fail before any worker starts when another process listens on host:port."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}); another process may be using "
                "the port: stop it or pass another --port"
            ) from None


def serve(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from leadml.config import ServeSettings

    workers = _workers(args)
    env = os.environ  # the workers are new processes: settings reach them through the environment
    if args.model:
        env["LEADML_MODEL_URI"] = args.model
    if args.reload_seconds is not None:
        env["LEADML_RELOAD_SECONDS"] = str(args.reload_seconds)
    if args.name:
        env["LEADML_MODEL_NAME"] = args.name
    serve = ServeSettings.from_env()  # bad settings stop here, before any worker starts
    settings = _settings(args)
    _check_port_free(args.host, args.port)
    uri = serve.model_uri or f"models:/{settings.model_name}@champion"
    shared = tempfile.mkdtemp(prefix="leadml-serve-")
    if workers > 1:  # metrics of all workers add up; /admin/reload reaches every worker
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", shared)
        env["LEADML_RELOAD_TOKEN"] = os.path.join(shared, "reload")
    leadml_logger = {"handlers": ["default"], "level": "INFO", "propagate": False}
    log_config = {
        **LOGGING_CONFIG,
        "loggers": {**LOGGING_CONFIG["loggers"], "leadml": leadml_logger},
    }
    print(
        f"leadml: serving {uri} on http://{args.host}:{args.port} ({workers} worker(s)); "
        f"API docs at http://{args.host}:{args.port}/docs",
        flush=True,
    )
    try:
        uvicorn.run(
            "leadml.api:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=workers,
            access_log=False,
            loop="uvloop",
            http="httptools",
            log_level="info" if args.verbose else "warning",
            log_config=log_config,
        )
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    return 0


def rules_fields(args: argparse.Namespace) -> int:
    from leadml import rules
    from leadml.score_io import load_model

    scorer, uri = load_model(_settings(args), args.model)
    print(f"fields a rule can test with {uri} ({scorer.spec.kind} model):")
    for f in rules.rule_fields(scorer.spec):
        values = scorer.spec.categories.get(f)
        shown = (
            f"  ({', '.join(values[:12])}{', ...' if len(values) > 12 else ''})" if values else ""
        )
        print(f"  {f}{shown}")
    return 0


def rules_compare(args: argparse.Namespace) -> int:
    from leadml import ledger, ledger_report, report, rules
    from leadml.config import TrainConfig
    from leadml.score_io import load_model

    settings = _settings(args)
    scorer, uri = load_model(settings, args.model)
    ruleset = rules.load_rules(args.rules, rules.rule_fields(scorer.spec))
    data = args.data or scorer.card.get("data", {}).get("path")
    if not data:
        raise ModelError("this model does not say which data it was trained on; pass --data")
    t0 = time.perf_counter()
    config = TrainConfig.from_yaml(args.config) if args.config else None
    result = ledger.compare(ruleset, scorer, Path(data), config, progress=not args.quiet)
    paths = ledger_report.write_report(
        result, args.out, f"Points ledger: {Path(args.rules).name} vs {uri}"
    )
    report.print_input(result.tables, result.notes, None)
    print(ledger_report.terminal_table(result))
    print(
        f"\ncompared {len(ruleset.rules)} rules on {result.test_leads:,} test leads of {data} "
        f"(points learned on {result.fit_leads:,} older leads) in {time.perf_counter() - t0:.1f}s"
    )
    for name, path in paths.items():
        print(f"  {name}: {path}")
    _log_ledger(settings, scorer, uri, paths)
    return 0


def _log_ledger(settings: Any, scorer: Any, uri: str, paths: dict[str, Path]) -> None:
    """Attach the ledger to the MLflow run the model came from, when it has one."""
    from leadml import tracking

    run_id = scorer.card.get("registry", {}).get("run_id")
    if run_id is None and uri.startswith("models:/"):
        run_id = tracking.version_info(settings, tracking.resolve_version(settings, uri))["run_id"]
    if run_id:
        for path in paths.values():
            tracking.log_artifact(run_id, settings, path, "ledger")
        print(f"  logged to MLflow run {run_id} (artifacts/ledger)")


def config(args: argparse.Namespace) -> int:
    import yaml

    from leadml.config import TrainConfig

    print("# leadml training config: every key with its default. Pass the file to --config.")
    print(yaml.safe_dump(TrainConfig().model_dump(), sort_keys=False), end="")
    return 0


def webhooks(args: argparse.Namespace) -> int:
    from leadml import webhooks
    from leadml.config import Environment, StoreSettings
    from leadml.store import ScoreStore

    env = Environment()
    hooks = StoreSettings.from_env(_settings(args).home, env)
    if hooks.store_url is None:
        raise ConfigError("the score store is off (LEADML_STORE_URL=off): there is no outbox")
    if args.send and not hooks.webhook_secret:
        raise ConfigError(
            "--send signs each event: set LEADML_WEBHOOK_SECRET to the receivers' secret"
        )
    store = ScoreStore(hooks.store_url)
    if args.replay is not None:
        count = store.replay(args.replay or None)
        which = "failed entries" if not args.replay else f"of {len(args.replay)} entries given"
        print(f"replay: {count} {which} pending again, due now")
    if args.send:
        sender = webhooks.Sender(store, str(hooks.webhook_secret))
        done = sender.deliver_due(limit=1000)
        print(
            f"send: {done.delivered} delivered, {done.retried} to retry, {done.failed} failed"
            + (f", {done.skipped} left for the next pass" if done.skipped else "")
        )
        for receiver, error in sorted(done.errors.items()):
            print(f"  {receiver}: {error}")
    _print_outbox(store, webhooks, args.status, args.limit)
    return 0


def _print_outbox(store: Any, webhooks: Any, status: str, limit: int) -> None:
    counts = store.outbox_counts()
    print(
        "webhooks: "
        + ", ".join(f"{counts.get(s, 0):,} {s}" for s in ("pending", "failed", "delivered"))
    )
    entries = store.outbox_entries(None if status == "all" else status, limit)
    if not entries:
        return
    rows = [webhooks.describe(e) for e in entries]
    when = {"delivered": "delivered at"}.get(status, "next try / delivered (UTC)")
    columns = ["id", "status", "event", "receiver", "lead", "change", "attempts", "when", "error"]
    titles = dict(zip(columns, columns, strict=True)) | {"when": when, "error": "last error"}
    table = [titles] + [row | {"status": e.status} for row, e in zip(rows, entries, strict=True)]
    widths = {c: max(len(r[c]) for r in table) for c in columns}
    print(f"latest {len(entries)}{'' if status == 'all' else ' ' + status}:")
    for r in table:
        print("  " + "  ".join(r[c].ljust(widths[c]) for c in columns).rstrip())


def _outcomes(args: argparse.Namespace, options: Any) -> tuple[Any, Any, str]:
    """What happened to the leads: a CRM folder's leads (--data) or an outcomes file
    (--outcomes), and until when that is known (the latest time the data shows, or
    --observed-until)."""
    import pandas as pd

    from leadml import dataset
    from leadml.monitor import naive_utc

    if args.data:
        data = dataset.load_crm(dataset.require_input(args.data), options)
        leads, events = data.leads, data.events
        times = [leads["created_at"].max(), leads["converted_at"].max()]
        if events is not None and len(events):
            times.append(events["occurred_at"].max())
        seen, where = max(t for t in times if pd.notna(t)), "the data's latest activity"
    else:
        data = dataset.load_outcomes(Path(args.outcomes), options)
        seen, where = data.leads["converted_at"].max(), "the outcomes' latest conversion"
    data.check_reject_share(options.max_reject_share)
    # an export holds the whole day of its latest activity: known through that day's end
    seen = pd.Timestamp(seen).ceil("D") if pd.notna(seen) else seen
    if args.observed_until is not None:
        seen, where = args.observed_until, "--observed-until"
    if pd.isna(seen):
        raise ConfigError(
            f"{args.outcomes}: no conversion dates, so it is unknown until when the outcomes "
            "are known; pass --observed-until YYYY-MM-DD"
        )
    return data, naive_utc(pd.Timestamp(seen)), where


def monitor(args: argparse.Namespace) -> int:
    import pandas as pd

    from leadml import monitor, monitor_report, report
    from leadml.dataset import MAX_REJECT_SHARE, ReadOptions
    from leadml.files import write_frame, write_text
    from leadml.metrics import monitor_latest
    from leadml.score_io import load_model

    if bool(args.data) == bool(args.outcomes):
        raise ConfigError("pass the outcomes: --data CRM_FOLDER or --outcomes FILE (one of them)")
    from leadml.config import TrainConfig

    settings, config = _settings(args), TrainConfig.from_yaml(args.config).monitor
    share = MAX_REJECT_SHARE if args.max_reject_share is None else args.max_reject_share
    options = ReadOptions(sep=args.sep, date_format=args.date_format, max_reject_share=share)
    scorer, uri = load_model(settings, args.model)
    data, seen, where = _outcomes(args, options)
    horizon = int(scorer.card.get("horizon_days") or 30)
    since = None if args.since is None else monitor.naive_utc(pd.Timestamp(args.since))
    until = None if args.until is None else monitor.naive_utc(pd.Timestamp(args.until))
    period = monitor.Period.default(seen, horizon, config, since, until)
    store = _open_store(settings)
    registry = scorer.card.get("registry") or {}
    name, version = registry.get("name", settings.model_name), registry.get("version")
    scores = store.scores_between(
        period.since.tz_localize("UTC"), period.until.tz_localize("UTC"), name
    )
    if version is not None:
        scores = scores[scores["model_version"] == str(version)]
    if scores.empty:
        raise ConfigError(
            f"no scores of {name} v{version} kept with an as-of from {period.since:%Y-%m-%d} to "
            f"{period.until:%Y-%m-%d} (outcomes known until {seen:%Y-%m-%d}, {where}; scores "
            f"mature {horizon} days after their as-of). Score leads first (`leadml score` and "
            "/predict keep them), or pick the period with --since / --until"
        )
    result = monitor.judge(scores, data.leads, store.fingerprints, scorer, period, config)
    out = Path(args.out) if args.out else monitor_latest(settings.home).parent
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(result, indent=1, default=str)
    paths = [write_text(out / f"monitor-{stamp}.json", text)]
    paths.append(monitor_report.write_html(result, out / f"monitor-{stamp}.html"))
    write_text(out / "latest.json", text)
    write_text(out / "latest.html", paths[1].read_text())
    rejects = write_frame(data.rejects.frame, out / f"monitor-{stamp}-rejects.csv")
    report.print_input(data.counts(), data.notes, rejects)
    run_id = None
    if not args.no_mlflow and settings.store_exists():
        from leadml import tracking

        run_id = tracking.log_monitor(settings, result, paths)
    _print_verdict(result, paths, run_id)
    return int(result["exit_code"])


def _print_verdict(result: dict, paths: list[Path], run_id: str | None) -> None:
    p, c = result["period"], result["counts"]
    print(
        f"{result['model']['name']} v{result['model']['version']}, scores as of "
        f"{p['since'][:10]} to {p['until'][:10]}: {c['leads']:,} leads, {c['matured']:,} "
        f"judged ({c['converted_before']:,} had converted before, {c['no_outcome']:,} not "
        f"in the outcomes); {result['readiness']['reason']}"
    )
    d = result["discrimination"]
    if d:
        print(
            f"AUC {d['auc']:.3f} (90% {d['low']:.3f}-{d['high']:.3f}) vs {d['expected']:.3f} at training"
        )
    drifted = (result["drift"] or {}).get("drifted", [])
    print(f"drifted features: {', '.join(drifted) if drifted else 'none'}")
    print(f"verdict: {result['verdict'].upper()} (exit code {result['exit_code']})")
    for reason in result["reasons"]:
        print(f"  - {reason}")
    for action in result["actions"]:
        print(f"  -> {action}")
    print(f"report: {paths[1]}\njson: {paths[0]}" + (f"\nMLflow run {run_id}" if run_id else ""))
