"""leadml benchmarks: wall time, peak memory and model quality, printed as they are measured.

    .venv/bin/python benchmarks/run.py                      # the default subjects, full size (1M leads)
    .venv/bin/python benchmarks/run.py training features    # these subjects only
    .venv/bin/python benchmarks/run.py all --quick          # every subject on tiny sizes
    .venv/bin/python benchmarks/run.py scoring --leads 20000 --score-reps 4

Subjects, one script each (`benchmarks/bench_<subject>.py`, which also runs alone, with
`--quick` and `--help`): demo, features, training, scoring, quality (X Education), grades
(fit x engagement, temperature, stage, PQL against outcomes), and, only
when named (or with `all`), contention, serving (needs wrk), dask (about 20 GB at full size),
input (two versions paired) and store (history reads at 1M scores, SQLite and PostgreSQL). The common options (sizes, --work, --quick, --quiet-wait,
...) and the way of measuring live in benchmarks/runner.py; see benchmarks/README.md.
Figures go to <work>/results.json and results.md (one subject: <work>/<subject>.json).
"""

from __future__ import annotations

import argparse
import importlib
import sys

import runner

SUBJECTS = (
    "demo",
    "features",
    "training",
    "scoring",
    "quality",
    "grades",
    "contention",
    "serving",
    "dask",
    "input",
    "store",
    "monitor",
    "workspace",
)


def modules(names: list[str]) -> list:
    return [importlib.import_module(f"bench_{name}") for name in names]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = [a for a in argv if not a.startswith("-") and a in (*SUBJECTS, "all")]
    rest = [a for a in argv if a not in chosen]
    if "all" in chosen:
        names = list(SUBJECTS)
    elif chosen:
        names = [s for s in SUBJECTS if s in chosen]
    else:
        names = [m.NAME for m in modules(list(SUBJECTS)) if m.DEFAULT]
    parser = argparse.ArgumentParser(
        usage="run.py [SUBJECT ...|all] [options]",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"subjects: {', '.join(SUBJECTS)}; the options of every chosen subject are listed above",
    )
    return runner.main(
        modules(names), rest, parser, command=f"benchmarks/run.py {' '.join(chosen)}".strip()
    )


if __name__ == "__main__":
    sys.exit(main())
