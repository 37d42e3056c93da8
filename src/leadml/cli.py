"""The `leadml` command: each subcommand parses its options and calls one library function."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
import warnings
from pathlib import Path

EPILOG = """examples:
  leadml synth --out data/sample --leads 20000
  leadml train --data data/sample
  leadml train --data leads.csv --target Converted --id "Prospect ID" --drop Tags,"Lead Quality"
  leadml score --data data/sample --out out/scores.csv
  leadml train --data data/big --engine dask --scheduler tcp://scheduler:8786
  leadml score --data data/big --out out/scores.parquet --engine dask
  leadml promote --version 3
  leadml serve --port 8000
  leadml rules compare --rules data/rules/sample_rules.yaml

settings come from the environment: LEADML_HOME (project folder, default: here),
MLFLOW_TRACKING_URI (default: sqlite file under LEADML_HOME/mlruns), LEADML_MODEL_NAME.
"""


MODEL_HELP = (
    "model URI: models:/leadml@champion, runs:/ID/model or an exported folder "
    "(default: models/champion, else the registry champion)"
)


PROMOTE_HELP = """\
Make a registered version the champion: the registry alias moves and the export
(models/champion, or models/NAME/champion with --name) follows.

Refused, with the reason, unless --force:
  - a version the leakage guard flagged (registry tag leadml.leakage): one column alone
    predicts the outcome, so it was probably filled in after the outcome was known;
  - a version that takes other input than the champion: CRM tables vs a flat export,
    another id or outcome column, a field callers do not send yet, or a field of another
    type. The service would answer the champion's callers with 422. Keep one registered
    name per data source (leadml train --name NAME) instead.

Safe to interrupt: a killed promotion leaves the old champion or the new one, and the
next leadml command finishes the switch and removes what was left behind.

examples:
  leadml promote                      # the challenger
  leadml promote --version 3
  leadml promote --name xeducation --version 2 --force
"""


def _settings(args=None):
    """Settings from the environment; `--name` picks another registered model."""
    from leadml.config import Settings

    return Settings.from_env().for_model(getattr(args, "name", None))


def cmd_synth(args) -> int:
    from leadml import synth

    t0 = time.perf_counter()
    steps = _progress(2, "synth", args.quiet)
    result = synth.make_crm(args.leads, args.seed)
    steps.update(1)
    paths = synth.write_crm(result, args.out, args.format, args.parts)
    steps.update(1)
    steps.close()
    m = result.meta
    print(
        f"wrote {len(result.leads):,} leads and {len(result.events):,} events to {args.out} in {time.perf_counter() - t0:.1f}s"
    )
    print(
        f"  cut-off {m['as_of']}, {m['snapshots']} monthly snapshots, conversion within {m['horizon_days']} days: {m['snapshot_conversion_rate']:.1%} of eligible leads"
    )
    print(f"  truth (true probabilities and effects): {paths['truth'].parent}")
    return 0


def _progress(total: int, desc: str, quiet: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=quiet, leave=False)


def _config(args):
    from leadml.config import TrainConfig

    cfg = TrainConfig.from_yaml(args.config)
    given = {"date_format": args.date_format, "max_reject_share": args.max_reject_share}
    cfg = cfg.with_changes({"input": {k: v for k, v in given.items() if v is not None}})
    flat = cfg.flat.model_copy(
        update={
            k: v
            for k, v in {
                "target": args.target,
                "id_column": args.id,
                "drop": [c.strip() for c in args.drop.split(",") if c.strip()]
                if args.drop
                else None,
                "sep": args.sep,
            }.items()
            if v is not None
        }
    )
    return cfg.model_copy(update={"flat": flat})


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def print_input(tables: dict, notes: list[str], rejects_path) -> None:
    """Rows in = used + rejected, per input table; how the files were read; the rejects file."""
    from leadml.dataset import TableCount

    for i, (table, c) in enumerate(tables.items()):
        count = c if isinstance(c, TableCount) else TableCount.from_dict(table, c)
        print(("input: " if i == 0 else "       ") + count.line())
    for note in notes:
        print(f"       {note}")
    if rejects_path is not None:
        print(f"       rejects: {rejects_path}")


def print_train_report(result, settings) -> None:
    m, b, o = result.metrics, result.baseline or {}, result.bayes or {}
    d = result.data_summary
    print()
    print(
        f"data: {d['kind']} {d['path']} | {d['rows']:,} training rows, conversion {d['conversion_rate']:.1%}, split {d['split']}"
    )
    if d.get("cutoffs"):
        print(
            f"      cut-offs {d['cutoffs'][-1]} .. {d['cutoffs'][0]}, horizon {d['horizon_days']} days"
        )
    print_input(d.get("tables", {}), d.get("read_notes", []), result.rejects_path)
    print(f"test slice: {m['leads']:,} leads")
    print(f"{'metric':<10} {'LightGBM':>10} {'baseline':>10} {'best possible':>14}")
    for k in ("roc_auc", "pr_auc", "log_loss", "brier", "ece"):
        print(f"{k:<10} {_fmt(m[k]):>10} {_fmt(b.get(k)):>10} {_fmt(o.get(k)):>14}")
    if o:
        print(
            f"  ('best possible' is the Bayes-optimal model using the generator's true probabilities; AUC gap {o['roc_auc'] - m['roc_auc']:+.4f})"
        )
    t = result.thresholds
    print(
        f"\nbands ({t.policy}: SQL at p >= {t.sql:.3f}, MQL at p >= {t.mql:.3f}), backtest on the test slice:"
    )
    print(result.band_table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    for w in result.warnings:
        print(f"WARNING: {w}")
    if result.run_id:
        print(f"\nMLflow run {result.run_id} in {settings.tracking_uri} (make mlflow-ui)")
        print(
            f"registered {settings.model_name} v{result.version} as challenger; "
            + ("promoted to champion" if result.promoted else "not promoted")
            + f" ({result.promotion_note})"
        )
    if result.export_path:
        print(f"champion exported to {result.export_path}")


@contextlib.contextmanager
def _engine(args):
    """None for the in-memory engine; a connected DaskEngine for --engine dask."""
    if args.engine != "dask":
        if args.scheduler or args.dask_workers:
            raise SystemExit("error: --scheduler and --dask-workers need --engine dask")
        yield None
        return
    from leadml.dask_engine import DaskEngine

    scheduler = args.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    with DaskEngine.connect(scheduler, args.dask_workers) as engine:
        where = scheduler or "a local cluster"
        print(f"dask: {engine.workers} worker(s) on {where}", flush=True)
        yield engine


def cmd_train(args) -> int:
    from leadml.train import train

    settings = _settings(args)
    cfg = _config(args)
    t0 = time.perf_counter()
    with _engine(args) as engine:
        result = train(
            args.data, cfg, settings, progress=not args.quiet, register=not args.no_register,
            engine=engine,
        )  # fmt: skip
    print_train_report(result, settings)
    print(f"\ntrained in {time.perf_counter() - t0:.1f}s")
    return 0


def cmd_score(args) -> int:
    from leadml.dataset import MAX_REJECT_SHARE, ReadOptions
    from leadml.score import check_paths, score_file

    check_paths(args.data, args.out)  # before anything is read or loaded
    settings = _settings(args)
    options = ReadOptions(
        sep=args.sep, date_format=args.date_format,
        max_reject_share=MAX_REJECT_SHARE if args.max_reject_share is None else args.max_reject_share,
    )  # fmt: skip
    t0 = time.perf_counter()
    with _engine(args) as engine:
        s = score_file(args.data, args.out, settings, args.model, options, args.as_of, engine)
    print(
        f"scored {s.scored:,} of {s.rows_in:,} leads with {s.model} in {time.perf_counter() - t0:.1f}s"
        + (f" (as of {s.as_of})" if s.as_of else "")
    )
    print_input(s.tables, s.notes, s.rejects_path)
    print("bands: " + ", ".join(f"{b} {n:,}" for b, n in sorted(s.bands.items())))
    print(f"output: {s.out_path}")
    return 0


def cmd_promote(args) -> int:
    from leadml import tracking

    settings = _settings(args)
    version = args.version or tracking.alias_version(settings, tracking.CHALLENGER)
    if version is None:
        print(
            f"error: no version given and no challenger alias on model {settings.model_name!r}; train first or pass --version",
            file=sys.stderr,
        )
        return 2
    path = tracking.promote(settings, version, force=args.force)
    print(f"{settings.model_name} v{version} is now champion; exported to {path}")
    return 0


def cmd_serve(args) -> int:
    import shutil
    import tempfile

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from leadml.config import ServeSettings

    env = os.environ  # the workers are new processes: settings reach them through the environment
    if args.model:
        env["LEADML_MODEL_URI"] = args.model
    if args.reload_seconds is not None:
        env["LEADML_RELOAD_SECONDS"] = str(args.reload_seconds)
    if args.name:
        env["LEADML_MODEL_NAME"] = args.name
    serve = ServeSettings.from_env()  # bad settings stop here, before any worker starts
    settings = _settings(args)
    uri = serve.model_uri or f"models:/{settings.model_name}@champion"
    shared = tempfile.mkdtemp(prefix="leadml-serve-")
    if args.workers > 1:  # metrics of all workers add up; /admin/reload reaches every worker
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", shared)
        env["LEADML_RELOAD_TOKEN"] = os.path.join(shared, "reload")
    log_config = {**LOGGING_CONFIG, "loggers": {**LOGGING_CONFIG["loggers"],
                  "leadml": {"handlers": ["default"], "level": "INFO", "propagate": False}}}  # fmt: skip
    print(
        f"leadml: serving {uri} on http://{args.host}:{args.port} ({args.workers} worker(s)); "
        f"API docs at http://{args.host}:{args.port}/docs",
        flush=True,
    )
    try:
        uvicorn.run(
            "leadml.api:create_app", factory=True, host=args.host, port=args.port,
            workers=args.workers, access_log=False, loop="uvloop", http="httptools",
            log_level="info" if args.verbose else "warning", log_config=log_config,
        )  # fmt: skip
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    return 0


def cmd_rules_fields(args) -> int:
    from leadml import rules
    from leadml.score import load_model

    scorer, uri = load_model(_settings(args), args.model)
    print(f"fields a rule can test with {uri} ({scorer.spec.kind} model):")
    for f in rules.rule_fields(scorer.spec):
        values = scorer.spec.categories.get(f)
        print(
            f"  {f}"
            + (
                f"  ({', '.join(values[:12])}{', ...' if len(values) > 12 else ''})"
                if values
                else ""
            )
        )
    return 0


def cmd_rules_compare(args) -> int:
    from leadml import ledger, rules, tracking
    from leadml.config import TrainConfig
    from leadml.score import load_model

    settings = _settings(args)
    scorer, uri = load_model(settings, args.model)
    ruleset = rules.load_rules(args.rules, rules.rule_fields(scorer.spec))
    data = args.data or scorer.card.get("data", {}).get("path")
    if not data:
        print(
            "error: this model does not say which data it was trained on; pass --data",
            file=sys.stderr,
        )
        return 2
    t0 = time.perf_counter()
    config = TrainConfig.from_yaml(args.config) if args.config else None
    result = ledger.compare(ruleset, scorer, Path(data), config, progress=not args.quiet)
    paths = ledger.write_report(
        result, args.out, f"Points ledger: {Path(args.rules).name} vs {uri}"
    )
    print_input(result.tables, result.notes, None)
    print(ledger.terminal_table(result))
    print(f"\ncompared {len(ruleset.rules)} rules on {result.test_leads:,} test leads of {data} "
          f"(points learned on {result.fit_leads:,} older leads) in {time.perf_counter() - t0:.1f}s")  # fmt: skip
    for name, path in paths.items():
        print(f"  {name}: {path}")
    run_id = scorer.card.get("registry", {}).get("run_id")
    if run_id is None and uri.startswith("models:/"):
        run_id = tracking.version_info(settings, tracking.resolve_version(settings, uri))["run_id"]
    if run_id:
        for path in paths.values():
            tracking.log_artifact(run_id, settings, path, "ledger")
        print(f"  logged to MLflow run {run_id} (artifacts/ledger)")
    return 0


def cmd_config(args) -> int:
    import yaml

    from leadml.config import TrainConfig

    print("# leadml training config: every key with its default. Pass the file to --config.")
    print(yaml.safe_dump(TrainConfig().model_dump(), sort_keys=False), end="")
    return 0


def _input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sep", help="delimiter of CSV files (default: sniffed among , ; tab |)")
    p.add_argument(
        "--date-format",
        choices=["day-first", "month-first"],
        help="order of numeric dates such as 03/04/2026 when no value shows it (a value like "
        "31/12/2025 shows day-first; default: found from the values, else an error asks for this)",
    )
    p.add_argument(
        "--max-reject-share",
        type=_share,
        metavar="SHARE",
        help="stop when a table (leads, events) has more rejected rows than this share "
        "(default 0.05 = 5%%); rejected rows are listed in the rejects file either way",
    )


def _share(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share such as 0.05 or 5%") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a share is between 0 and 1 (or 0% and 100%)")
    return value


def _engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=["local", "dask"],
        default="local",
        help="local: in this process (default). dask: on a Dask cluster, for CRM tables whose "
        "events outgrow memory (Parquet parts are read a row group at a time; score writes "
        "--out as a folder of Parquet parts, or one CSV when it ends in .csv)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --engine dask: the scheduler to use, e.g. tcp://10.0.0.5:8786 (default: "
        "DASK_SCHEDULER_ADDRESS, else a local cluster); see README 'Scaling out on Dask'",
    )
    p.add_argument(
        "--dask-workers",
        type=int,
        metavar="N",
        help="with --engine dask and no scheduler: worker processes of the local cluster "
        "(default: one per core)",
    )


def _name_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--name",
        help="registered model name (default: LEADML_MODEL_NAME or leadml); one per data source, "
        "each with its own champion, exported to models/NAME/champion (leadml: models/champion)",
    )


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="leadml",
        description="Learn lead conversion from history; score leads with a calibrated probability, a 1-99 score and an SQL/MQL band.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="log each step")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "synth",
        help="write synthetic CRM tables with known true probabilities",
        description="Write leads, events and a truth folder (true conversion probabilities, true effect of each behaviour). Deterministic by seed.",
        formatter_class=fmt,
    )
    s.add_argument(
        "--out", required=True, type=Path, help="folder to write leads, events and truth/ into"
    )
    s.add_argument(
        "--leads", type=int, default=20_000, help="number of leads (default 20000; 1000000+ works)"
    )
    s.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    s.add_argument(
        "--format",
        choices=["auto", "csv", "parquet"],
        default="auto",
        help="file format (auto: Parquet from 100k leads)",
    )
    s.add_argument(
        "--parts",
        type=int,
        default=1,
        help="write the events as a folder of this many Parquet files (default 1: one file)",
    )
    s.set_defaults(func=cmd_synth)

    t = sub.add_parser(
        "train",
        help="train, evaluate, log to MLflow, register and maybe promote",
        description="Train a calibrated conversion model. PATH is a folder of CRM tables (leads + events) or one flat CSV/Parquet export.",
        formatter_class=fmt,
    )
    t.add_argument("--data", required=True, type=Path, help="CRM folder or flat export file")
    t.add_argument("--target", help="flat export: outcome column (0/1, yes/no, true/false)")
    t.add_argument("--id", help="flat export: lead id column (default: row number)")
    t.add_argument(
        "--drop",
        help="flat export: comma-separated columns to leave out (e.g. ones filled in after contact)",
    )
    _input_options(t)
    t.add_argument(
        "--config", type=Path, help="YAML training config (`leadml config` prints the defaults)"
    )
    t.add_argument(
        "--no-register", action="store_true", help="fit and evaluate only; nothing goes to MLflow"
    )
    _name_option(t)
    _engine_options(t)
    t.set_defaults(func=cmd_train)

    c = sub.add_parser(
        "score",
        help="score new leads in batch",
        description="Score leads in the training shape. Every input row (leads and events) is\n"
        "scored, used or in <out>.rejects.csv with its reason; the summary counts them per\n"
        "table, and a table with more than --max-reject-share rejected rows stops the run.\n"
        "Output and rejects are written to a temporary name and renamed; --out may not\n"
        "overwrite an input file. Formats, encodings and date orders: README, 'What leadml\n"
        "accepts'.",
        formatter_class=fmt,
    )
    c.add_argument("--data", required=True, type=Path, help="CRM folder or flat export file")
    c.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output .csv or .parquet (id, probability, score, band)",
    )
    c.add_argument(
        "--model",
        help=MODEL_HELP,
    )
    _input_options(c)
    c.add_argument(
        "--as-of",
        help="CRM: cut-off time for engagement features, ISO 8601 such as 2026-06-30 or "
        "2026-06-30T09:00 (default: the latest activity in the data, never later than now)",
    )
    _name_option(c)
    _engine_options(c)
    c.set_defaults(func=cmd_score)

    r = sub.add_parser(
        "promote",
        help="move the champion alias to a version (default: the challenger) and export it",
        description=PROMOTE_HELP,
        formatter_class=fmt,
    )
    r.add_argument(
        "--version", help="registered version to promote (default: the current challenger)"
    )
    r.add_argument(
        "--force",
        action="store_true",
        help="promote even a version the leakage guard flagged or whose input differs from the "
        "champion's (once its callers send the new input)",
    )
    _name_option(r)
    r.set_defaults(func=cmd_promote)

    v = sub.add_parser(
        "serve",
        help="start the scoring service (FastAPI on uvicorn)",
        description="Serve /predict, /model, /metrics and /docs. The model is the registry champion "
        "(models:/leadml@champion, or models:/NAME@champion with --name) unless --model or "
        "LEADML_MODEL_URI names another; the service serves one model name and reloads it when "
        "the champion alias moves, or on POST /admin/reload. "
        "Set LEADML_API_KEY to require an X-API-Key header. See serve/README.md.",
        formatter_class=fmt,
    )
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    v.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    v.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("LEADML_WORKERS", "2")),
        help="worker processes (default: LEADML_WORKERS or 2, one per core here)",
    )
    v.add_argument(
        "--model",
        help="models:/leadml@champion (default), models:/leadml/3, runs:/ID/model, or an exported folder such as models/champion",
    )
    _name_option(v)
    v.add_argument(
        "--reload-seconds",
        type=float,
        help="how often to check whether the champion moved (default: LEADML_RELOAD_SECONDS or 30; 0: never)",
    )
    v.set_defaults(func=cmd_serve)

    rl = sub.add_parser(
        "rules",
        help="compare marketers' point rules with the model (the points ledger)",
        description="Point rules (YAML, see data/rules/sample_rules.yaml) against the learned model.",
        formatter_class=fmt,
    )
    rsub = rl.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    rc = rsub.add_parser(
        "compare",
        help="rule by rule: coverage, conversion, your points vs learned points, verdicts; HTML report",
        description="Score the model's test leads with your rules and with the model; learn what each "
        "rule's points should be; write ledger.csv, ledger.html, suggested_rules.yaml and "
        "disagreements.csv to --out, and log them to the model's MLflow run.",
        formatter_class=fmt,
    )
    rc.add_argument("--rules", required=True, type=Path, help="your rules file (YAML)")
    rc.add_argument(
        "--model",
        help=MODEL_HELP,
    )
    rc.add_argument(
        "--data", type=Path, help="leads to compare on (default: the data the model was trained on)"
    )
    rc.add_argument(
        "--out", type=Path, default=Path("out/ledger"), help="report folder (default out/ledger)"
    )
    rc.add_argument(
        "--config", type=Path, help="training config, if the model was trained with one"
    )
    _name_option(rc)
    rc.set_defaults(func=cmd_rules_compare)
    rf = rsub.add_parser(
        "fields", help="list the fields a rule can test for a model", formatter_class=fmt
    )
    rf.add_argument(
        "--model",
        help=MODEL_HELP,
    )
    _name_option(rf)
    rf.set_defaults(func=cmd_rules_fields)

    g = sub.add_parser(
        "config",
        help="print the default training config as YAML",
        description="Print every training setting with its default; save it, edit it, pass it to train --config.",
        formatter_class=fmt,
    )
    g.set_defaults(func=cmd_config)
    return p


def main(argv: list[str] | None = None) -> int:
    from leadml.errors import LeadmlError

    args = build_parser().parse_args(argv)
    # MLflow reads these when it is first imported (only leadml.tracking imports it)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # LightGBM's OpenMP threads spin while they wait; on a shared 2-core machine that made
    # boosting 3x slower whenever anything else ran (benchmarks/RESULTS.md, contention).
    # Read when LightGBM is first imported, which the subcommands do lazily.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Dask sets its own log levels when imported; its shuffle logs routine steps as warnings
    if not args.verbose:
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    warnings.filterwarnings("ignore", module=r"mlflow\..*")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("mlflow", "alembic", "urllib3", "distributed"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return args.func(args)
    except (LeadmlError, OSError) as exc:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during training
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"leadml {args.command}: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
