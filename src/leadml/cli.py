"""The `leadml` command: a table of commands, each adding its options; `main` runs one and
turns a person's mistake into one line on stderr.

Building the parser imports nothing heavy (no pandas, numpy, sklearn, LightGBM, MLflow,
FastAPI), so `leadml --help` answers at once; each command in `leadml.commands` imports the
library it calls when it runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from leadml import commands
from leadml.errors import LeadmlError

EPILOG = """examples:
  leadml synth --out data/sample --leads 20000
  leadml train --data data/sample
  leadml train --data leads.csv --target Converted --id "Prospect ID" --drop Tags,"Lead Quality"
  leadml score --data data/sample --out out/scores.csv
  leadml train --data data/big --engine dask --scheduler tcp://scheduler:8786
  leadml score --data data/big --out out/scores.parquet --engine dask
  leadml promote --version 3
  leadml rollback
  leadml monitor --data data/later
  leadml retrain --data data/latest
  leadml serve --port 8000
  leadml rules compare --rules data/rules/sample_rules.yaml
  leadml history 100042
  leadml store prune --days 365
  leadml webhooks --status failed

settings come from the environment: LEADML_HOME (project folder, default: here),
MLFLOW_TRACKING_URI (default: sqlite file under LEADML_HOME/mlruns), LEADML_MODEL_NAME,
LEADML_STORE_URL (the score store; default: LEADML_HOME/store.db; off: keep no scores).
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
        "--out as a folder of Parquet parts, or one CSV when it ends in .csv); a flat export "
        "is read on this machine and boosted or scored on the cluster",
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


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the mistake and where the help is, not the whole usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(least: int, what: str, most: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `least` (to `most`)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least or (most is not None and value > most):
            bounds = f"at least {least}" if most is None else f"between {least} and {most}"
            raise argparse.ArgumentTypeError(f"{what} must be {bounds}, got {value}")
        return value

    return parse


FMT = argparse.RawDescriptionHelpFormatter


def add_synth(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "synth",
        help="write synthetic CRM tables with known true probabilities",
        description="Write leads, events and a truth folder (true conversion probabilities, true effect of each behaviour). Deterministic by seed.",
        formatter_class=FMT,
    )
    s.add_argument(
        "--out", required=True, type=Path, help="folder to write leads, events and truth/ into"
    )
    s.add_argument(
        "--leads",
        type=_count(100, "--leads"),
        default=20_000,
        help="number of leads (default 20000; 1000000+ works)",
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
        type=_count(1, "--parts"),
        default=1,
        help="write the events as a folder of this many Parquet files (default 1: one file)",
    )
    s.add_argument(
        "--later",
        action="store_true",
        help="the later period: the same world 91 days on (cut-off 2026-09-29, every date "
        "shifted, new lead ids from 10000001), undrifted unless --drift or --concept; for "
        "testing leadml monitor against a model trained on today's data",
    )
    s.add_argument(
        "--drift",
        type=lambda text: tuple(n.strip() for n in text.split(",") if n.strip()),
        default=(),
        metavar="F1,F2",
        help="implies --later. Shift these by a known, large amount: profile fields "
        "company_size (towards small companies), lead_source (30%% from a new source "
        "'Partner', no effect on conversion), industry (towards Software), country (towards "
        "APAC and LATAM; the model sees region), seniority (towards senior job titles); "
        "engagement kind webinar (10x the rate). How conversion depends on the lead stays. "
        "truth/truth.json 'drift' records the shares before and after and the derived "
        "features a monitor must flag ('derived') or may see move ('affected')",
    )
    s.add_argument(
        "--concept",
        action="store_true",
        help="implies --later. How conversion depends on the lead changes: lead_source "
        "effects reversed, engagement weights halved, intercept re-fitted to the same "
        "conversion rate, so a model trained on today's data loses AUC. truth/truth.json "
        "'concept' records the effects before and after",
    )
    s.set_defaults(func=commands.synth)


def add_train(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train",
        help="train, evaluate, log to MLflow, register and maybe promote",
        description="Train a calibrated conversion model. PATH is a folder of CRM tables (leads + events) or one flat CSV/Parquet export.",
        formatter_class=FMT,
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
    t.set_defaults(func=commands.train)


def add_score(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "score",
        help="score new leads in batch",
        description="Score leads in the training shape. Every input row (leads and events) is\n"
        "scored, used or in <out>.rejects.csv with its reason; the summary counts them per\n"
        "table, and a table with more than --max-reject-share rejected rows stops the run.\n"
        "Output and rejects are written to a temporary name and renamed; --out may not\n"
        "overwrite an input file. Formats, encodings and date orders: README, 'What leadml\n"
        "accepts'.",
        formatter_class=FMT,
    )
    c.add_argument("--data", required=True, type=Path, help="CRM folder or flat export file")
    c.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output .csv or .parquet (id, probability, score, band)",
    )
    c.add_argument("--model", help=MODEL_HELP)
    _input_options(c)
    c.add_argument(
        "--as-of",
        help="CRM: cut-off time for engagement features, ISO 8601 such as 2026-06-30 or "
        "2026-06-30T09:00 (default: the latest activity in the data, never later than now)",
    )
    c.add_argument(
        "--reasons",
        action="store_true",
        help="also work out each lead's reasons and keep them in the score store, so "
        "`leadml history` says which reasons moved (LightGBM's SHAP pass: about 3x slower); "
        "without it the store keeps the scores, grades and features",
    )
    _name_option(c)
    _engine_options(c)
    c.set_defaults(func=commands.score)


def add_promote(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "promote",
        help="move the champion alias to a version (default: the challenger) and export it",
        description=PROMOTE_HELP,
        formatter_class=FMT,
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
    r.set_defaults(func=commands.promote)


ROLLBACK_HELP = """\
Make the previous champion champion again, in one command: the registry alias, the export
(models/champion) and a running service (at its next reload poll) follow together.

Every promotion (leadml promote, leadml train, leadml retrain) records the champion it
replaced as the registry alias `previous`. A rollback swaps the two, so a second rollback
returns to where you were. Refused, exit 2, when no champion was ever replaced.

examples:
  leadml rollback
  leadml rollback --name xeducation
"""


def add_rollback(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "rollback",
        help="return to the previous champion (registry alias, export and service together)",
        description=ROLLBACK_HELP,
        formatter_class=FMT,
    )
    _name_option(r)
    r.set_defaults(func=commands.rollback)


MONITOR_HELP = """\
How the champion's kept scores did against what really happened, whether its inputs still
look like its training data, and what to do about it.

For the scores kept in the score store (LEADML_STORE_URL; `leadml score` and /predict keep
them) with an as-of in the period, and the outcomes (--data: a CRM folder's leads, or
--outcomes: a CSV/Parquet of lead_id, converted, converted_at), it reports:
  - ranking: AUC with a bootstrap interval vs the model's own test-slice AUC;
  - calibration: observed vs predicted conversion per band and per grid cell;
  - score drift: share of leads per band, now vs at training, per week;
  - input drift: each feature against the reference profile saved with the model (PSI,
    missing rates, categories unseen in training);
  - a verdict with the reasons in words and the actions.
A lead counts once (its first score in the period), when it had not converted before it
was scored; it converted if it did within the model's horizon after the score's as-of.
Default period: the last monitor.window_days (90) whose scores have matured, i.e. as-of +
horizon <= the time the outcomes are known until.

Readiness: with fewer than monitor.min_leads (1,000) judged leads or monitor.min_conversions
(100) conversions it says so and exits 0: never an alarm on too little data.

Writes <home>/monitor/monitor-<time>.html (offline report) and .json (the same figures,
the drifted features), latest.json / latest.html (read by the service's /metrics), the
outcomes' rejects, and an MLflow run.

exit codes: 0 ok (or not enough data to judge), 1 warn, 2 alert, 3 could not judge (bad
input or no scores: the message says what to fix). For cron and CI: see the README,
"Monitor and adjust".
"""


def add_monitor(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser(
        "monitor",
        help="judge the kept scores against outcomes and the inputs against training; exit 0/1/2",
        description=MONITOR_HELP,
        formatter_class=FMT,
    )
    got = m.add_mutually_exclusive_group()
    got.add_argument("--data", type=Path, help="CRM folder whose leads carry the outcomes")
    got.add_argument(
        "--outcomes", type=Path, help="CSV/Parquet with lead_id, converted, converted_at"
    )
    m.add_argument(
        "--observed-until",
        help="outcomes known until this time (default: the data's latest activity, or the "
        "outcomes file's latest conversion)",
    )
    m.add_argument("--since", help="first as-of judged, ISO 8601 (default: see above)")
    m.add_argument("--until", help="as-of judged up to (not including) this time")
    m.add_argument("--model", help=MODEL_HELP)
    m.add_argument(
        "--config",
        type=Path,
        help="YAML training config whose monitor: section sets the thresholds",
    )
    m.add_argument(
        "--out", type=Path, help="folder for the report and JSON (default: <home>/monitor)"
    )
    m.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    _input_options(m)
    _name_option(m)
    m.set_defaults(func=commands.monitor, error_exit=3)


RETRAIN_HELP = """\
Retrain on the latest data, and promote the new version only when it is not worse than the
champion on the most recent matured period (the newest cut-off whose horizon has passed,
which training holds out as its test slice).

Readiness first: fewer matured leads or conversions in that period than the config's
monitor.min_leads / monitor.min_conversions (default 1000 and 100) and nothing is trained
into the registry. Then the guard, the same as leadml promote's refusals plus: the
challenger's AUC may be lower than the champion's by at most the tolerance, judged on the
low end of the 90% bootstrap interval of the difference. Why goes to
LEADML_HOME/retrain/latest.json (and a dated copy), to the version's registry tag
leadml.retrain, and to the screen.

exit codes:
  0  promoted: the challenger is champion (or there was none)
  1  kept: registered as challenger, the champion stays (the sentence says why)
  2  a mistake to fix (data, config, store), in one line
  3  not ready: not enough matured data, nothing registered

examples:
  leadml retrain --data data/latest
  leadml retrain --data data/latest --tolerance 0.01 --dry-run
"""


def add_retrain(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "retrain",
        help="retrain when there is enough matured data; promote only if not worse (exit 0/1/3)",
        description=RETRAIN_HELP,
        formatter_class=FMT,
    )
    r.add_argument("--data", required=True, type=Path, help="CRM folder or flat export file")
    r.add_argument(
        "--config",
        type=Path,
        help="YAML training config; its monitor: section holds the readiness thresholds "
        "and auc_tolerance (`leadml config` prints the defaults)",
    )
    r.add_argument(
        "--tolerance",
        type=_share,
        metavar="AUC",
        help="AUC the challenger may lose against the champion (default: the config's "
        "monitor.auc_tolerance, 0.02)",
    )
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="fit, check readiness and compare with the champion; register, promote and "
        "write nothing (exit code as it would be)",
    )
    _name_option(r)
    r.set_defaults(func=commands.retrain)


def add_serve(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser(
        "serve",
        help="start the scoring service (FastAPI on uvicorn)",
        description="Serve /predict, /model, /metrics and /docs. The model is the registry champion "
        "(models:/leadml@champion, or models:/NAME@champion with --name) unless --model or "
        "LEADML_MODEL_URI names another; the service serves one model name and reloads it when "
        "the champion alias moves, or on POST /admin/reload. "
        "Set LEADML_API_KEY to require an X-API-Key header. See serve/README.md.",
        formatter_class=FMT,
    )
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    v.add_argument(
        "--port", type=_count(0, "--port", 65535), default=8000, help="port (default 8000)"
    )
    v.add_argument(
        "--workers",
        type=_count(1, "--workers"),
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
    v.set_defaults(func=commands.serve)


def add_rules(sub: argparse._SubParsersAction) -> None:
    rl = sub.add_parser(
        "rules",
        help="compare marketers' point rules with the model (the points ledger)",
        description="Point rules (YAML, see data/rules/sample_rules.yaml) against the learned model.",
        formatter_class=FMT,
    )
    rsub = rl.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    rc = rsub.add_parser(
        "compare",
        help="rule by rule: coverage, conversion, your points vs learned points, verdicts; HTML report",
        description="Score the model's test leads with your rules and with the model; learn what each "
        "rule's points should be; write ledger.csv, ledger.html, suggested_rules.yaml and "
        "disagreements.csv to --out, and log them to the model's MLflow run.",
        formatter_class=FMT,
    )
    rc.add_argument("--rules", required=True, type=Path, help="your rules file (YAML)")
    rc.add_argument("--model", help=MODEL_HELP)
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
    rc.set_defaults(func=commands.rules_compare)
    rf = rsub.add_parser(
        "fields", help="list the fields a rule can test for a model", formatter_class=FMT
    )
    rf.add_argument("--model", help=MODEL_HELP)
    _name_option(rf)
    rf.set_defaults(func=commands.rules_fields)


def add_history(sub: argparse._SubParsersAction) -> None:
    h = sub.add_parser(
        "history",
        help="a lead's kept scores, their trend and what changed between them",
        description="Print a lead's scores from the score store, newest first (time, score, "
        "band, grid, model version), the trend over the newest five (rising / falling / flat, "
        "with its slope) and what moved between each score and the one before: the model, "
        "the features, the reasons. The same as GET /leads/LEAD_ID/history. The store is "
        "LEADML_STORE_URL (default: store.db under LEADML_HOME).",
        formatter_class=FMT,
    )
    h.add_argument(
        "lead_id",
        metavar="LEAD_ID",
        help="the lead's id, as sent to /predict or in the scored file",
    )
    h.add_argument(
        "--limit",
        type=_count(1, "--limit"),
        default=20,
        help="how many of the newest scores (default 20)",
    )
    h.set_defaults(func=commands.history)


def add_store(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser(
        "store",
        help="look after the score store (retention)",
        description="The score store keeps every score the service and leadml score give "
        "(ids, scores, grades, reason points, a feature fingerprint; never personal data).",
        formatter_class=FMT,
    )
    ssub = st.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    pr = ssub.add_parser(
        "prune",
        help="delete scores older than the retention",
        description="Delete the scores older than --days, else LEADML_STORE_RETENTION_DAYS; "
        "prints how many went. Run it from cron (e.g. daily) to apply the retention.",
        formatter_class=FMT,
    )
    pr.add_argument(
        "--days",
        type=_count(1, "--days"),
        help="keep this many days of scores (default: LEADML_STORE_RETENTION_DAYS)",
    )
    pr.set_defaults(func=commands.store_prune)


def add_config(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser(
        "config",
        help="print the default training config as YAML",
        description="Print every training setting with its default; save it, edit it, pass it to train --config.",
        formatter_class=FMT,
    )
    g.set_defaults(func=commands.config)


WEBHOOKS_HELP = """\
The band-change webhooks in the score store's outbox: how many are pending, delivered and
failed, and the latest entries (id, event id = Idempotency-Key, receiver, lead, old -> new
band, attempts, next try or delivery time, last error). Receiver URLs are shown without
credentials or query; the secret is never printed.

The service delivers pending entries every second while LEADML_WEBHOOK_URLS is set; retries
back off from seconds up to a minute, for 48 h after the event, then the entry is failed.
Without a running service, --send makes one delivery pass now (after `leadml score`, say).
--replay puts failed entries (or the ids given) back to pending with the same event id, so a
receiver that dedupes on Idempotency-Key still sees each event once.

settings: LEADML_STORE_URL (default: sqlite under LEADML_HOME), LEADML_WEBHOOK_SECRET
(needed by --send).

examples:
  leadml webhooks                         # counts and the 20 latest entries
  leadml webhooks --status failed --limit 100
  leadml webhooks --replay --send         # all failed ones, sent now
  leadml webhooks --replay 12 13          # these entries, at the service's next pass
"""


def add_webhooks(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser(
        "webhooks",
        help="list band-change webhook deliveries; replay failed ones; send what is due",
        description=WEBHOOKS_HELP,
        formatter_class=FMT,
    )
    w.add_argument(
        "--status",
        choices=["pending", "failed", "delivered", "all"],
        default="all",
        help="which entries to list (default all)",
    )
    w.add_argument(
        "--limit",
        type=_count(1, "--limit"),
        default=20,
        help="how many of the latest entries to list (default 20)",
    )
    w.add_argument(
        "--replay",
        nargs="*",
        type=_count(1, "an entry id"),
        metavar="ID",
        help="put entries back to pending, due now: the ids given (from the listing), else "
        "every failed one",
    )
    w.add_argument(
        "--send",
        action="store_true",
        help="make one delivery pass now, signed with LEADML_WEBHOOK_SECRET (for when no "
        "service runs)",
    )
    w.set_defaults(func=commands.webhooks)


# The commands, in the order `leadml --help` lists them.
COMMANDS = (
    add_synth,
    add_train,
    add_score,
    add_history,
    add_promote,
    add_rollback,
    add_monitor,
    add_retrain,
    add_serve,
    add_rules,
    add_store,
    add_config,
    add_webhooks,
)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="leadml",
        description="Learn lead conversion from history; score leads with a calibrated probability, a 1-99 score and an SQL/MQL band.",
        epilog=EPILOG,
        formatter_class=FMT,
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or step lines")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="log each step; tracebacks with errors"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return p


def one_line(exc: BaseException) -> str:
    """A person's mistake as one line: a file error names the file, a long message is joined."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return f"{where}{exc.strerror}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command. A person's mistake (LeadmlError, a file that cannot be read or written)
    ends in one line on stderr and exit code 2, with the traceback only under -v; anything
    else is a bug and keeps its traceback (exit code 1)."""
    args = build_parser().parse_args(argv)
    commands.quiet_libraries(args.verbose)
    try:
        return args.func(args)
    except (LeadmlError, OSError) as exc:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return getattr(args, "error_exit", 2)  # monitor: 2 means alert, so its errors are 3
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during training
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"leadml {args.command}: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
