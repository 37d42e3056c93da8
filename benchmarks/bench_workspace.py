"""Workspace: the server time of each page (aim < 300 ms on the demo-size model).

    .venv/bin/python benchmarks/bench_workspace.py            # a model on 20,000 leads
    .venv/bin/python benchmarks/bench_workspace.py --quick    # 3,000 leads

Trains a model on a synthetic sample (as `make demo`), builds the service in this process with
a score store of its own, scores 200 leads through /predict (so the lead lookup has history),
then times each page through the ASGI app (no network, no browser: the service's own time)
over --workspace-reps warm requests: the overview, the rules page, the bands recount, a rules comparison (the
first one for a rules text, which refits the rules, and the repeat, which is cached), the lead
lookup, /docs and /redoc.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import runner
from fixtures import ROOT
from measure import contention, say, warn_contended

NAME = "workspace"
DEFAULT = False
QUICK = {"workspace_leads": 3000, "workspace_reps": 10}
AIM_MS = 300


def add_options(p: argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--workspace-leads", type=int, default=20_000, help="workspace: leads trained on"
    )
    p.add_argument("--workspace-reps", type=int, default=30, help="workspace: requests per page")


def _ms(values: list[float]) -> dict:
    values = sorted(values)
    return {
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "max_ms": round(values[-1] * 1000, 1),
        "n": len(values),
    }


def _records(made, n: int = 200) -> list[dict]:
    """Request-shaped leads (profile, events, as_of) as the tests build them."""
    import json

    import pandas as pd

    from leadml import records

    cut = pd.Timestamp(made.meta["as_of"])
    alive = made.leads[pd.to_datetime(made.leads["created_at"]) < cut].head(n)
    events = made.events[made.events["lead_id"].isin(alive["lead_id"])]
    rec = records.from_tables(alive, events, cut).drop(columns=["converted", "converted_at"])
    rows = rec.astype(object).where(rec.notna(), None).to_dict("records")
    for r in rows:
        r["events"], r["lead_id"] = json.loads(r["events"]), str(r["lead_id"])
    return rows


def run(args: argparse.Namespace) -> dict:
    import os
    import re

    from fastapi.testclient import TestClient

    from leadml import synth
    from leadml.api import create_app
    from leadml.config import ServeSettings, TrainConfig
    from leadml.serving import LoadedModel
    from leadml.train import fit

    out: dict = {"leads": args.workspace_leads, "pages": {}}
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        os.environ["LEADML_STORE_URL"] = f"sqlite:///{work / 'store.db'}"
        made = synth.make_crm(args.workspace_leads, seed=42)
        synth.write_crm(made, work / "data")
        result, _ = fit(work / "data", TrainConfig())
        path = result.scorer.save(work / "model")
        model = LoadedModel.build(result.scorer, "leadml", "1", str(path), "bench")
        app = create_app(serve=ServeSettings(reload_seconds=0), model=model)
        records = _records(made)
        with TestClient(app) as c:
            for chunk in range(0, len(records), 50):
                c.post("/predict/batch", json={"leads": records[chunk : chunk + 50]})
            lead = records[0]["lead_id"]
            deadline = time.monotonic() + 30
            while c.get(f"/workspace/lead?lead_id={lead}").status_code != 200:
                assert time.monotonic() < deadline, "the store never kept the scored leads"
                time.sleep(0.2)
            page = c.get("/workspace/rules").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            rules = (ROOT / "data" / "rules" / "sample_rules.yaml").read_text()
            first = time.perf_counter()
            c.post("/workspace/rules", data={"csrf_token": token, "rules_text": rules})
            out["rules_first_compare_ms"] = round((time.perf_counter() - first) * 1000, 1)
            pages = {
                "overview": lambda: c.get("/workspace/overview"),
                "rules": lambda: c.get("/workspace/rules"),
                "rules compare (cached)": lambda: c.post(
                    "/workspace/rules", data={"csrf_token": token, "rules_text": rules}
                ),
                "bands (recount)": lambda: c.get("/workspace/bands?sql=0.6&mql=0.25"),
                "lead lookup": lambda: c.get(f"/workspace/lead?lead_id={lead}"),
                "/docs": lambda: c.get("/docs"),
                "/redoc": lambda: c.get("/redoc"),
            }
            with contention(out):
                for name, call in pages.items():
                    assert call().status_code == 200, name  # warm
                    took = []
                    for _ in range(args.workspace_reps):
                        t = time.perf_counter()
                        call()
                        took.append(time.perf_counter() - t)
                    out["pages"][name] = _ms(took)
    worst = max([p["max_ms"] for p in out["pages"].values()] + [out["rules_first_compare_ms"]])
    out["aim_met"] = worst < AIM_MS
    for name, p in out["pages"].items():
        say(f"[workspace] {name}: p50 {p['p50_ms']} ms, max {p['max_ms']} ms ({p['n']} requests)")
    say(
        f"[workspace] first comparison of a rules text: {out['rules_first_compare_ms']} ms; "
        f"aim every page < {AIM_MS} ms: {'met' if out['aim_met'] else 'MISSED'}"
    )
    warn_contended(out)
    return out


def markdown(d: dict) -> list[str]:
    rows: list[tuple[str, object]] = [
        (f"{name}: p50 / max (ms)", f"{p['p50_ms']} / {p['max_ms']}")
        for name, p in d["pages"].items()
    ]
    rows += [
        ("first comparison of a rules text (ms)", d["rules_first_compare_ms"]),
        (f"aim < {AIM_MS} ms per page", "met" if d["aim_met"] else "MISSED"),
        ("others (cores) during the requests", runner.contended(d)),
    ]
    return runner.md_table("workspace", rows)


if __name__ == "__main__":
    sys.exit(runner.main([sys.modules[__name__]]))
