"""Fault injection: hand leadml what real users and real machines do, and check what happens.

    .venv/bin/python benchmarks/faults.py             # every case (~5 min on 2 cores)
    .venv/bin/python benchmarks/faults.py --quick     # the quick cases (make test runs these)
    .venv/bin/python benchmarks/faults.py --only kill # cases whose name contains "kill"
    .venv/bin/python benchmarks/faults.py --list      # the cases and what each expects

Every case runs the real `leadml` command line (a child process: exit codes, stderr lines and
kills are real) in a scratch LEADML_HOME with its own MLflow store, and prints one line:

    case  |  expected  |  observed  |  ok / FAIL

The exit code is 1 when any case fails. Cases are grouped: input files (issue 13 sections
1-5), kills and full disks, promotion (section 6) and the service (section 7). Scratch folders
go to benchmarks/_work/faults/ (removed unless --keep).

Over ~400 lines on purpose: a catalogue of small independent cases (each a short function
and one line in CASES); the shared scratch environment and server come from fixtures.py.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import fixtures
import numpy as np
import pandas as pd
from fixtures import ROOT

WORK = ROOT / "benchmarks" / "_work" / "faults"
LEADS = 1500


@dataclass(frozen=True)
class Case:
    name: str
    expected: str
    run: Callable[[World, Path], str]  # returns what was observed; "ok: ..." when as expected
    quick: bool = True


class World:
    """A scratch home with synthetic CRM data and a trained champion, made once."""

    service: Service | None = None

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.data = root / "crm"
        self.env = fixtures.scratch_env(
            self.home, OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(ROOT / "src")
        )

    def leadml(
        self,
        *args: str,
        timeout: float = 300,
        env: dict | None = None,
        preexec: Callable | None = None,
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "leadml.cli", "-q", *args],
            capture_output=True,
            text=True,
            env=env or self.env,
            timeout=timeout,
            preexec_fn=preexec,
            cwd=self.root,
        )

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "leadml.cli", "-q", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.root,
        )

    def prepare(self) -> None:
        ok = self.leadml("synth", "--out", str(self.data), "--leads", str(LEADS), "--seed", "3")
        _must(ok, "synth")
        cfg = self.root / "small.yaml"
        cfg.write_text("model:\n  baseline: false\n  max_rounds: 60\n")
        _must(self.leadml("train", "--data", str(self.data), "--config", str(cfg)), "train")
        self.config = cfg
        self.model = str(self.home / "models" / "champion")
        self.clean = self.score(self.data, "clean")

    def copy(self, name: str) -> Path:
        out = self.root / name
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(self.data, out, ignore=shutil.ignore_patterns("truth"))
        return out

    def score(
        self, data: Path, name: str, *extra: str
    ) -> pd.DataFrame | subprocess.CompletedProcess:
        out = self.root / "out" / f"{name}.csv"
        done = self.leadml(
            "score",
            "--data",
            str(data),
            "--out",
            str(out),
            "--model",
            self.model,
            "--as-of",
            "2026-06-15",
            *extra,
        )
        if done.returncode:
            return done
        frame = pd.read_csv(out, dtype={"lead_id": str})
        frame.attrs["stdout"] = done.stdout
        return frame


def _must(done: subprocess.CompletedProcess, what: str) -> None:
    if done.returncode:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-500:]}")


def _one_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def _max_dp(a: pd.DataFrame, b: pd.DataFrame, skip: set | None = None) -> float:
    a, b = a.set_index("lead_id"), b.set_index("lead_id")
    common = a.index.intersection(b.index).difference(list(skip or ()))
    return float(np.abs(a.loc[common, "probability"] - b.loc[common, "probability"]).max())


def _same(world: World, other, skip: set | None = None) -> str:
    if isinstance(other, subprocess.CompletedProcess):
        return f"exit {other.returncode}: {_one_line(other)}"
    dp = _max_dp(world.clean, other, skip)
    n = len(other)
    return f"{'ok' if dp <= 1e-9 else 'DIFFERENT'}: {n} leads scored, max |dp| {dp:.1e}"


# ---- input files ------------------------------------------------------------------------


def odd_event_id(world: World, tmp: Path) -> str:
    folder = world.copy("odd")
    events = pd.read_csv(folder / "events.csv", dtype=str)
    owner = events.loc[11, "lead_id"]
    events.loc[11, "lead_id"] = "L-odd"
    events.to_csv(folder / "events.csv", index=False)
    out = world.score(folder, "odd")
    if isinstance(out, subprocess.CompletedProcess):
        return _same(world, out)
    rejected = "1 no lead with this id" in out.attrs["stdout"]
    return _same(world, out, {owner}) + ("" if rejected else "; the reject was not reported")


def leading_zeros(world: World, tmp: Path) -> str:
    folder = world.copy("zeros")
    leads = pd.read_csv(folder / "leads.csv", dtype=str)
    leads.loc[0, "lead_id"], leads.loc[1, "lead_id"] = "000123", "123"
    leads.to_csv(folder / "leads.csv", index=False)
    out = world.score(folder, "zeros")
    if isinstance(out, subprocess.CompletedProcess):
        return _same(world, out)
    ids = set(out["lead_id"])
    return (
        "ok: both kept, written as read" if {"000123", "123"} <= ids else f"ids {sorted(ids)[:3]}"
    )


def float_ids_in_parquet(world: World, tmp: Path) -> str:
    folder = tmp / "pq"
    folder.mkdir()
    leads = pd.read_csv(world.data / "leads.csv")
    leads["lead_id"] = leads["lead_id"].astype(float)
    leads.to_parquet(folder / "leads.parquet")
    pd.read_csv(world.data / "events.csv").to_parquet(folder / "events.parquet")
    return _same(world, world.score(folder, "pq"))


def garbage_events_stop(world: World, tmp: Path) -> str:
    folder = world.copy("garbage")
    events = pd.read_csv(folder / "events.csv", dtype=str)
    events.loc[: len(events) // 4, "event_type"] = "fax_sent"
    events.to_csv(folder / "events.csv", index=False)
    done = world.score(folder, "garbage")
    if not isinstance(done, subprocess.CompletedProcess):
        return f"scored {len(done)} leads from a file that is 25% garbage"
    line = _one_line(done)
    good = done.returncode == 2 and "events.csv" in line and "unknown event type" in line
    return ("ok: " if good else "") + f"exit {done.returncode}: {line[:150]}"


def duplicate_ids(world: World, tmp: Path) -> str:
    folder = world.copy("dups")
    leads = pd.read_csv(folder / "leads.csv", dtype=str)
    pd.concat([leads, leads.iloc[[3]].assign(job_title="Student")]).to_csv(
        folder / "leads.csv", index=False
    )
    out = world.score(folder, "dups")
    note = "" if isinstance(out, subprocess.CompletedProcess) else out.attrs["stdout"]
    return _same(world, out) + ("; 1 duplicate id reported" if "1 duplicate id" in note else "")


def _dates(world: World, name: str, fmt: str) -> Path:
    folder = world.copy(name)
    for table, cols in (("leads", ["created_at", "converted_at"]), ("events", ["occurred_at"])):
        frame = pd.read_csv(folder / f"{table}.csv", dtype=str)
        for col in cols:
            stamps = pd.to_datetime(frame[col])
            frame[col] = stamps.dt.strftime(fmt).where(stamps.notna())
        frame.to_csv(folder / f"{table}.csv", index=False)
    return folder


def day_first_dates(world: World, tmp: Path) -> str:
    return _same(world, world.score(_dates(world, "dmy", "%d/%m/%Y %H:%M:%S"), "dmy"))


def dotted_dates(world: World, tmp: Path) -> str:
    return _same(world, world.score(_dates(world, "dots", "%d.%m.%Y %H:%M:%S"), "dots"))


def ambiguous_dates(world: World, tmp: Path) -> str:
    folder = tmp / "amb"
    folder.mkdir()
    pd.DataFrame({"lead_id": ["1", "2"], "created_at": ["03/04/2026", "05/06/2026"]}).to_csv(
        folder / "leads.csv", index=False
    )
    pd.DataFrame(
        {"lead_id": ["1"], "occurred_at": ["2026-06-07"], "event_type": ["webinar"]}
    ).to_csv(folder / "events.csv", index=False)
    done = world.score(folder, "amb")
    asked = isinstance(done, subprocess.CompletedProcess) and "--date-format" in _one_line(done)
    again = world.score(folder, "amb2", "--date-format", "day-first")
    scored = isinstance(again, pd.DataFrame) and len(again) == 2
    return (
        "ok: asked for --date-format, then scored"
        if asked and scored
        else f"asked={asked} scored={scored}"
    )


def future_event(world: World, tmp: Path) -> str:
    folder = world.copy("future")
    events = pd.read_csv(folder / "events.csv", dtype=str)
    events.loc[5, "occurred_at"] = "2031-01-01 00:00:00"
    events.to_csv(folder / "events.csv", index=False)
    out = world.leadml(
        "score", "--data", str(folder), "--out", str(tmp / "f.csv"), "--model", world.model
    )
    clean = world.leadml(
        "score", "--data", str(world.data), "--out", str(tmp / "c.csv"), "--model", world.model
    )
    if out.returncode or clean.returncode:
        return f"exit {out.returncode}: {_one_line(out)}"
    a = pd.read_csv(tmp / "f.csv", dtype={"lead_id": str})
    b = pd.read_csv(tmp / "c.csv", dtype={"lead_id": str})
    same_cut = (
        out.stdout.split("(as of")[1].split(")")[0] == clean.stdout.split("(as of")[1].split(")")[0]
    )
    dp = _max_dp(a, b)
    ok = dp <= 1e-9 and same_cut and "1 in the future" in out.stdout
    return f"{'ok: ' if ok else ''}same default as-of {same_cut}, max |dp| {dp:.1e}"


def _flat_rows(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    return pd.DataFrame(
        {
            "ref": [f"R{i:04d}" for i in range(n)],
            "visits": rng.poisson(4, n),
            "minutes": (rng.gamma(2, 10, n).round(1) + 0.25),
            "plan": rng.choice(["Free", "Pró", "Team"], n),
            "city": rng.choice(["Zürich", "São Paulo", "Köln"], n),
            "won": rng.choice(["yes", "no"], n),
        }
    )


def _flat_model(world: World) -> str:
    """A flat-export model on `_flat_rows` (trained once per run)."""
    path = world.root / "flat_model"
    if not (path / "scorer.json").exists():
        from leadml.config import TrainConfig
        from leadml.train import fit

        _flat_rows().to_csv(world.root / "flat.csv", index=False)
        cfg = {
            "flat": {"target": "won", "id_column": "ref"},
            "model": {"baseline": False, "max_rounds": 40},
        }
        result, _ = fit(world.root / "flat.csv", TrainConfig.model_validate(cfg))
        result.scorer.save(path)
    return str(path)


def _score_flat(world: World, path: Path, model: str, out: Path) -> pd.DataFrame | str:
    done = world.leadml("score", "--data", str(path), "--out", str(out), "--model", model)
    if done.returncode:
        return f"exit {done.returncode}: {_one_line(done)}"
    return pd.read_csv(out, dtype={"ref": str}).set_index("ref")


def decimal_commas(world: World, tmp: Path) -> str:
    model = _flat_model(world)
    rows = _flat_rows().drop(columns=["won"])
    rows.to_csv(tmp / "dots.csv", index=False)
    rows.to_csv(tmp / "commas.csv", sep=";", decimal=",", index=False)
    a = _score_flat(world, tmp / "dots.csv", model, tmp / "a.csv")
    b = _score_flat(world, tmp / "commas.csv", model, tmp / "b.csv")
    if isinstance(a, str) or isinstance(b, str):
        return str(a if isinstance(a, str) else b)
    dp = float(np.abs(a["probability"] - b["probability"]).max())
    return f"{'ok' if dp <= 1e-9 else 'DIFFERENT'}: max |dp| {dp:.1e}"


def encodings(world: World, tmp: Path) -> str:
    model = _flat_model(world)
    rows = _flat_rows().drop(columns=["won"])
    rows.to_csv(tmp / "utf8.csv", index=False)
    base = _score_flat(world, tmp / "utf8.csv", model, tmp / "u.csv")
    seen = []
    for enc in ("utf-8-sig", "cp1252", "latin-1", "utf-16"):
        rows.to_csv(tmp / f"{enc}.csv", index=False, encoding=enc)
        other = _score_flat(world, tmp / f"{enc}.csv", model, tmp / f"o-{enc}.csv")
        if isinstance(other, str) or isinstance(base, str):
            return f"{enc}: {other if isinstance(other, str) else base}"
        seen.append(f"{enc} {float(np.abs(base['probability'] - other['probability']).max()):.0e}")
    rows.to_excel(tmp / "leads.xlsx", index=False)
    xlsx = _score_flat(world, tmp / "leads.xlsx", model, tmp / "x.csv")
    if isinstance(xlsx, str):
        return f"xlsx: {xlsx}"
    seen.append(f"xlsx {float(np.abs(base['probability'] - xlsx['probability']).max()):.0e}")
    ok = all(s.endswith("0e+00") for s in seen)
    return ("ok: " if ok else "") + "max |dp| " + ", ".join(seen)


def not_tables(world: World, tmp: Path) -> str:
    observed = []
    for name, content in (
        ("binary.csv", b"\x00\x01PK\x00\xff" * 99),
        ("empty.csv", b""),
        ("header.csv", b"lead_id,x\n"),
        ("old.xls", b"\xd0\xcf\x11\xe0" + b"\0" * 99),
    ):
        path = tmp / name
        path.write_bytes(content)
        for cmd in (
            ["train", "--data", str(path), "--target", "x", "--no-register"],
            ["score", "--data", str(path), "--out", str(tmp / "s.csv"), "--model", world.model],
        ):
            done = world.leadml(*cmd)
            lines = done.stderr.strip().splitlines()
            good = done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr
            observed.append(
                "." if good else f"{name}/{cmd[0]}: exit {done.returncode}, {len(lines)} lines"
            )
    bad = [o for o in observed if o != "."]
    return "ok: 8 of 8 one line, exit 2" if not bad else "; ".join(bad)


def out_is_input(world: World, tmp: Path) -> str:
    folder = world.copy("same")
    before = (folder / "events.csv").read_bytes()
    done = world.leadml(
        "score", "--data", str(folder), "--out", str(folder / "events.csv"), "--model", world.model
    )
    kept = (folder / "events.csv").read_bytes() == before
    return (
        "ok: " if done.returncode == 2 and kept else ""
    ) + f"exit {done.returncode}, input kept {kept}"


def personal_data(world: World, tmp: Path) -> str:
    rng = np.random.default_rng(1)
    n = 600
    owners = [f"rep{i}@example.org" for i in range(4)]
    frame = pd.DataFrame(
        {
            "ref": [f"R{i}" for i in range(n)],
            "Email": [f"p{i}@mail.example" for i in range(n)],
            "Account Owner": rng.choice(owners, n),
            "Owner Name": rng.choice(["Ann Lee", "Bo Dahl"], n),
            "visits": rng.poisson(3, n),
            "source": rng.choice(["Web", "Ads", "x@partner.example"], n),
            "won": rng.choice([0, 1], n),
        }
    )
    frame.to_csv(tmp / "pii.csv", index=False)
    env = {**world.env, "LEADML_HOME": str(tmp / "pii_home")}
    done = world.leadml(
        "train", "--data", str(tmp / "pii.csv"), "--target", "won", "--id", "ref", env=env
    )
    if done.returncode:
        return f"train exit {done.returncode}: {_one_line(done)}"
    secrets = [*owners, "Ann Lee", "Bo Dahl", "x@partner.example", "p1@mail.example"]
    found = [
        f"{s} in {p.name}"
        for p in (tmp / "pii_home").rglob("*")
        if p.is_file()
        for s in secrets
        if s.encode() in p.read_bytes()
    ]
    found += [f"{s} in output" for s in secrets if s in done.stdout + done.stderr]
    return (
        "ok: none found in the store, artefacts, export or output"
        if not found
        else "; ".join(found[:3])
    )


# ---- kills and full disks ---------------------------------------------------------------


def full_disk_while_scoring(world: World, tmp: Path) -> str:
    out = tmp / "scores.csv"
    first = world.leadml(
        "score", "--data", str(world.data), "--out", str(out), "--model", world.model
    )
    _must(first, "score")
    before = out.read_bytes()

    limit = len(before) // 2

    def small_disk() -> None:  # writes past half the scores fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = world.leadml(
        "score",
        "--data",
        str(world.data),
        "--out",
        str(out),
        "--model",
        world.model,
        preexec=small_disk,
    )
    kept = out.read_bytes() == before
    leftovers = [p.name for p in tmp.iterdir() if p.name.startswith(".")]
    ok = done.returncode != 0 and kept and not leftovers
    return (
        "ok: " if ok else ""
    ) + f"exit {done.returncode}, previous scores whole {kept}, leftovers {leftovers}"


def kill_score_at_random(world: World, tmp: Path, tries: int = 6) -> str:
    out = tmp / "scores.csv"
    rng = random.Random(13)
    seen = []
    for _ in range(tries):
        proc = world.start(
            "score", "--data", str(world.data), "--out", str(out), "--model", world.model
        )
        time.sleep(rng.uniform(0.5, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if out.exists():
            frame = pd.read_csv(out)
            seen.append("whole" if len(frame) == LEADS else f"TORN ({len(frame)} rows)")
        else:
            seen.append("absent")
    done = world.leadml(
        "score", "--data", str(world.data), "--out", str(out), "--model", world.model
    )
    leftovers = [p.name for p in tmp.iterdir() if p.name.startswith(".")]
    ok = not any(s.startswith("TORN") for s in seen) and done.returncode == 0 and not leftovers
    return (
        "ok: " if ok else ""
    ) + f"after kills: {', '.join(seen)}; next run cleans up: {not leftovers}"


# ---- the service ------------------------------------------------------------------------


class Service:
    """`leadml serve` (uvicorn, one worker) on a free loopback port, serving the champion."""

    def __init__(self, world: World):
        self.port = fixtures.free_port()
        serve = ["serve", "--port", str(self.port), "--workers", "1", "--model", world.model]
        cmd = [sys.executable, "-m", "leadml.cli", *serve, "--reload-seconds", "0"]
        self.log = world.root / "serve.log"
        ready = f"http://127.0.0.1:{self.port}/ready"
        self.server = fixtures.Server("leadml serve", cmd, world.env, self.log, ready, stdout=False)
        self.server.start(world.root)
        self.server.wait_ready(time.perf_counter() + 120)

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(
                method,
                path,
                body=body or None,
                headers={"content-type": "application/json", **(headers or {})},
            )
            r = conn.getresponse()
            return r.status, r.read(), dict(r.getheaders())
        finally:
            conn.close()

    def stop(self) -> str:
        """Stop it and return what it wrote to stderr."""
        self.server.stop()
        return self.log.read_text(errors="replace")


def _service(world: World) -> Service:
    if world.service is None:
        world.service = Service(world)
    return world.service


def _request_leads(world: World, n: int = 20) -> list[dict]:
    import json

    from leadml import dataset
    from leadml.records import from_tables

    data = dataset.load_crm(world.data, require_outcome=False)
    leads = data.leads.head(n)
    events = data.events[data.events["lead_id"].isin(leads["lead_id"])]
    from leadml.model import LeadScorer

    fields = LeadScorer.load(world.model).spec.input_fields()
    rec = from_tables(leads[fields], events, pd.Timestamp("2026-06-15"))
    rows = rec.astype(object).where(rec.notna(), None).to_dict("records")
    return [{**r, "events": json.loads(r["events"])} for r in rows]


def _status(world: World, body: bytes, path: str = "/predict") -> tuple[int, str]:
    import json

    status, raw, _ = _service(world).request("POST", path, body)
    try:
        message = json.loads(raw).get("error", "")
    except ValueError:
        message = raw[:80].decode(errors="replace")
    return status, message


def _refused(world: World, body: bytes, what: str) -> str:
    status, message = _status(world, body)
    ok = status in (400, 422) and message
    return ("ok: " if ok else "") + f"{status} ({what}): {message[:90]}"


def nested_json(world: World, tmp: Path) -> str:
    return _refused(world, b'{"leads": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "100,000 deep")


def huge_numbers(world: World, tmp: Path) -> str:
    import json

    lead = _request_leads(world, 1)[0]
    body = json.dumps(lead).replace('"lead_id": "', '"lead_id": 1' + "9" * 5000 + ', "x": "', 1)
    first = _refused(world, body.encode(), "a 5,001-digit id")
    body = json.dumps({**lead, "as_of": "\u2603"}).replace('"\\u2603"', "1e400")
    second = _refused(world, body.encode(), "1e400 as a time")
    return first if not first.startswith("ok") else second


def not_utf8(world: World, tmp: Path) -> str:
    import json

    lead = _request_leads(world, 1)[0]
    return _refused(world, json.dumps(lead).encode("utf-16"), "UTF-16 body")


def megabyte_string(world: World, tmp: Path) -> str:
    import json

    lead = {**_request_leads(world, 1)[0], "job_title": "x" * 1_000_000}
    status, message = _status(world, json.dumps(lead).encode())
    echoed = "x" * 100 in message
    ok = status == 422 and not echoed
    return ("ok: " if ok else "") + f"{status}, value echoed {echoed}: {message[:80]}"


def hang_up(world: World, tmp: Path) -> str:
    import socket

    service = _service(world)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", service.port)) as sock:
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n" + b'{"leads": ['
            )
            time.sleep(0.2)
    time.sleep(0.5)
    _, metrics, _ = service.request("GET", "/metrics")
    text = metrics.decode()
    lines = [
        line
        for line in text.splitlines()
        if line.startswith("leadml_requests_total") and "/predict" in line
    ]
    server_errors = [line for line in lines if 'status="500"' in line]
    gone = [line for line in lines if 'status="499"' in line]
    ok = not server_errors and gone
    return ("ok: " if ok else "") + f"500s counted: {len(server_errors)}, 499 lines: {gone[:1]}"


def wrong_method(world: World, tmp: Path) -> str:
    status, _, headers = _service(world).request("GET", "/predict")
    allow = {k.lower(): v for k, v in headers.items()}.get("allow", "")
    ok = status == 405 and "POST" in allow
    return ("ok: " if ok else "") + f"{status}, Allow: {allow!r}"


def blank_ids(world: World, tmp: Path) -> str:
    import json

    lead = {**_request_leads(world, 1)[0], "lead_id": "  "}
    seen = {
        "/predict lead": _status(world, json.dumps(lead).encode()),
        "/predict batch": _status(world, json.dumps({"leads": [lead]}).encode()),
        "/predict/batch": _status(world, json.dumps({"leads": [lead]}).encode(), "/predict/batch"),
    }
    statuses = {s for s, _ in seen.values()}
    ok = statuses == {422}
    return ("ok: " if ok else "") + ", ".join(f"{k} {s}" for k, (s, _) in seen.items())


def reasons_add_up(world: World, tmp: Path) -> str:
    import json

    leads = _request_leads(world, 20)
    status, raw, _ = _service(world).request(
        "POST", "/predict", json.dumps({"leads": leads}).encode()
    )
    if status != 200:
        return f"{status}: {raw[:120]!r}"
    gaps = []
    for p in json.loads(raw)["predictions"]:
        r = p["reasons"]
        listed = sum(x["points"] for x in r["positive"] + r["negative"])
        gaps.append(
            max(
                abs(r["base_score"] + listed + r["other"] - r["total"]),
                abs(r["total"] - 100 * p["probability"]),
            )
        )
    worst = max(gaps)
    return ("ok: " if worst <= 1e-6 else "") + f"{len(gaps)} leads, worst gap {worst:.1e} points"


# ---- promotion, kills and concurrency ---------------------------------------------------


def _registry(world: World):
    """(settings, alias version, exported version, leftovers) of the world's home, read fresh."""
    from leadml import champion, tracking
    from leadml.config import Settings

    settings = Settings.from_env(world.home)
    alias = tracking.alias_version(settings, tracking.CHAMPION)
    held = champion.exported(settings)
    left = [p.name for p in champion.leftovers(champion.export_root(settings))]
    return settings, alias, held[1] if held else None, left


def _agree(world: World) -> str:
    _, alias, held, left = _registry(world)
    ok = alias is not None and alias == held and not left
    return ("ok: " if ok else "") + f"alias v{alias}, export v{held}, leftovers {left}"


def _versions(world: World, n: int = 2) -> list[str]:
    """At least `n` registered CRM versions (extra ones trained with fewer rounds)."""
    from leadml import tracking

    settings, *_ = _registry(world)
    c = tracking.client(settings)
    crm = [
        str(v.version)
        for v in c.search_model_versions(f"name='{settings.model_name}'")
        if c.get_run(v.run_id).data.tags.get("leadml.kind") == "crm"
    ]
    if len(crm) < n:
        cfg = world.root / "fewer.yaml"
        cfg.write_text("model:\n  baseline: false\n  max_rounds: 20\n")
        _must(world.leadml("train", "--data", str(world.data), "--config", str(cfg)), "train")
        return _versions(world, n)
    return sorted(crm, key=int)


def flat_over_crm_champion(world: World, tmp: Path) -> str:
    _flat_rows().to_csv(tmp / "flat.csv", index=False)
    trained = world.leadml(
        "train",
        "--data",
        str(tmp / "flat.csv"),
        "--target",
        "won",
        "--id",
        "ref",
        "--config",
        str(world.config),
    )
    _must(trained, "flat train")
    version = trained.stdout.split("registered leadml v")[1].split()[0]
    auto = "not promoted" in trained.stdout and "takes other input" in trained.stdout
    done = world.leadml("promote", "--version", version)
    refused = done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    agree = _agree(world)
    ok = auto and refused and agree.startswith("ok")
    return (
        "ok: " if ok else ""
    ) + f"train kept it challenger {auto}, promote refused {refused}: {agree}"


def leaky_model(world: World, tmp: Path) -> str:
    rows = _flat_rows()
    rows["closed_reason"] = np.where(rows["won"] == "yes", "signed", "lost")  # filled in afterwards
    rows.to_csv(tmp / "leaky.csv", index=False)
    trained = world.leadml(
        "train",
        "--data",
        str(tmp / "leaky.csv"),
        "--target",
        "won",
        "--id",
        "ref",
        "--name",
        "leaky",
        "--config",
        str(world.config),
    )
    _must(trained, "leaky train")
    kept = "not promoted" in trained.stdout and "leakage" in trained.stdout
    refused = world.leadml("promote", "--name", "leaky").returncode == 2
    forced = world.leadml("promote", "--name", "leaky", "--force").returncode == 0
    ok = kept and refused and forced
    return ("ok: " if ok else "") + f"not auto-promoted {kept}, refused {refused}, --force {forced}"


def leftover_old_export(world: World, tmp: Path) -> str:
    first, second = _versions(world)[:2]
    _, alias, *_ = _registry(world)
    old = world.home / "models" / "champion.old"
    old.mkdir(parents=True, exist_ok=True)
    (old / "scorer.json").write_text("{half")
    done = world.leadml("promote", "--version", second if alias == first else first)
    back = world.leadml("promote", "--version", str(alias))
    ok = done.returncode == 0 and back.returncode == 0 and not old.exists()
    state = _agree(world)
    return ("ok: " if ok and state.startswith("ok") else "") + (
        f"promote exit {done.returncode}, champion.old removed {not old.exists()}; {state}"
    )


def promote_under_load(world: World, tmp: Path) -> str:
    import json
    import threading

    service = _service(world)
    body = json.dumps({"leads": _request_leads(world, 5)}).encode()
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            statuses.append(service.request("POST", "/predict?reasons=false", body)[0])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    versions = _versions(world)[:2]
    _, start, *_ = _registry(world)
    for t in threads:
        t.start()
    try:
        for v in [versions[1], versions[0], versions[1], str(start)]:
            _must(world.leadml("promote", "--version", v), "promote")
            service.request("POST", "/admin/reload")
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    served = json.loads(service.request("GET", "/model")[1])["version"]
    _, alias, *_ = _registry(world)
    failed = [s for s in statuses if s != 200]
    ok = statuses and not failed and served == alias
    return ("ok: " if ok else "") + (
        f"{len(statuses)} requests, {len(failed)} not 200; /model v{served}, alias v{alias}"
    )


def kill_promote_at_random(world: World, tmp: Path, tries: int = 8) -> str:
    versions = _versions(world)[:2]
    rng = random.Random(5)
    seen = []
    for i in range(tries):
        proc = world.start("promote", "--version", versions[i % 2])
        time.sleep(rng.uniform(0.3, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        nxt = world.leadml("score", "--data", str(world.data), "--out", str(tmp / "s.csv"))
        state = _agree(world)
        seen.append("agree" if nxt.returncode == 0 and state.startswith("ok") else state)
    bad = [s for s in seen if s != "agree"]
    head = f"{tries - len(bad)} of {tries} kills: alias and export agree after the next command"
    return ("ok: " if not bad else "") + head + (f"; {bad[0]}" if bad else "")


def kill_train_at_random(world: World, tmp: Path, tries: int = 4) -> str:
    from leadml import tracking

    rng = random.Random(9)
    for _ in range(tries):
        proc = world.start("train", "--data", str(world.data), "--config", str(world.config))
        time.sleep(rng.uniform(0.5, 4.5))  # training takes about 4 s here
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    nxt = world.leadml("score", "--data", str(world.data), "--out", str(tmp / "s.csv"))
    settings, *_ = _registry(world)
    runs = tracking.client(settings).search_runs(
        [tracking.connect(settings)], filter_string="attributes.status = 'RUNNING'"
    )
    agree = _agree(world)
    ok = nxt.returncode == 0 and not runs and agree.startswith("ok")
    return ("ok: " if ok else "") + f"RUNNING runs left {len(runs)}; {agree}"


def train_and_promote_at_once(world: World, tmp: Path) -> str:
    versions = _versions(world)[:2]
    train = world.start("train", "--data", str(world.data), "--config", str(world.config))
    promotes = [world.start("promote", "--version", v) for v in versions * 2]
    codes = [p.wait() for p in [train, *promotes]]
    agree = _agree(world)
    ok = codes == [0] * len(codes) and agree.startswith("ok")
    return ("ok: " if ok else "") + f"exit codes {codes}; {agree}"


PROMOTION_CASES = [
    Case(
        "promote: flat model over CRM champion",
        "kept challenger by train, refused by promote",
        flat_over_crm_champion,
    ),
    Case("promote: leaky model", "registered, not promoted; only --force promotes it", leaky_model),
    Case(
        "promote: leftover champion.old",
        "the next promote works and removes it",
        leftover_old_export,
    ),
    Case(
        "promote: under load on the service",
        "every request 200; /model follows the alias",
        promote_under_load,
    ),
    Case(
        "kill: promote, kill -9 at random points",
        "next command: alias and export agree",
        kill_promote_at_random,
        quick=False,
    ),
    Case(
        "kill: train, kill -9 at random points",
        "next command: no RUNNING run, all agree",
        kill_train_at_random,
        quick=False,
    ),
    Case(
        "concurrent: train and 4 promotes at once",
        "all succeed; alias and export agree",
        train_and_promote_at_once,
        quick=False,
    ),
]


CASES = [
    Case(
        "input: one odd event id",
        "that event rejected, every other lead as on clean data (|dp| <= 1e-9)",
        odd_event_id,
    ),
    Case("input: 000123 and 123", "two leads, ids written back as read", leading_zeros),
    Case(
        "input: Parquet float ids", "100001.0 is lead 100001: scores as clean", float_ids_in_parquet
    ),
    Case(
        "input: 25% garbage events",
        "exit 2, one line naming events.csv and the reason",
        garbage_events_stop,
    ),
    Case(
        "input: repeated lead id",
        "first row used, the other rejected, scores as clean",
        duplicate_ids,
    ),
    Case("input: day-first dates", "scores as the ISO file", day_first_dates),
    Case("input: 31.12.2025 dates", "scores as the ISO file", dotted_dates),
    Case("input: ambiguous dates", "asks for --date-format; scores with it", ambiguous_dates),
    Case(
        "input: event in 2031",
        "rejected as in the future; as-of and scores unchanged",
        future_event,
    ),
    Case("input: ';' and decimal commas", "scores as the file with dots", decimal_commas),
    Case("input: BOM, cp1252, latin-1, UTF-16, xlsx", "scores as UTF-8", encodings),
    Case(
        "input: binary, empty, header-only, .xls",
        "exit 2 and one line, in train and score",
        not_tables,
    ),
    Case("input: --out is an input file", "refused, input untouched", out_is_input),
    Case(
        "input: personal columns and values",
        "none in the MLflow store, export or output",
        personal_data,
    ),
    Case(
        "disk: full while writing scores",
        "run fails, previous scores whole, no leftovers",
        full_disk_while_scoring,
    ),
    Case(
        "kill: score, kill -9 at random points",
        "output absent or whole, never torn",
        kill_score_at_random,
        quick=False,
    ),
    Case("service: JSON nested 100,000 deep", "400 with a message", nested_json),
    Case("service: numbers too large", "400/422 with a message", huge_numbers),
    Case("service: UTF-16 body", "400 with a message", not_utf8),
    Case("service: a 1 MB string", "422, the value not echoed", megabyte_string),
    Case("service: client hangs up mid-body", "counted as 499, no 500", hang_up),
    Case("service: GET /predict", "405 with Allow: POST", wrong_method),
    Case("service: blank lead_id", "422 in a lead, a batch and /predict/batch", blank_ids),
    Case(
        "service: reasons add up", "base + listed + other == total == 100 p (1e-6)", reasons_add_up
    ),
]
CASES += PROMOTION_CASES


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="only the quick cases (make test)")
    p.add_argument("--only", help="cases whose name contains this text")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument(
        "--work", type=Path, default=None, help="scratch folder (default: a temporary one)"
    )
    args = p.parse_args(argv)
    cases = [
        c for c in CASES if (not args.quick or c.quick) and (not args.only or args.only in c.name)
    ]
    if args.list:
        for c in cases:
            print(f"{c.name:<42} {c.expected}{'' if c.quick else '  (full run only)'}")
        return 0
    fixtures.strip_env()  # every case reads and writes its own scratch home only, also in here
    root = Path(args.work or tempfile.mkdtemp(prefix="leadml-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    world = World(root)
    t0 = time.perf_counter()
    world.prepare()
    failed = 0
    print(f"{'case':<42} | {'expected':<60} | observed", flush=True)
    for i, case in enumerate(cases):
        tmp = root / f"case{i}"
        tmp.mkdir()
        try:
            observed = case.run(world, tmp)
        except Exception as exc:  # a case that crashes is a failed case, the others go on
            observed = f"{type(exc).__name__}: {str(exc)[:200]}"
        ok = observed.startswith("ok")
        failed += not ok
        print(
            f"{case.name:<42} | {case.expected:<60} | {observed} | {'ok' if ok else 'FAIL'}",
            flush=True,
        )
    service = world.service
    if service is not None:  # after all of the above, its log holds no error
        log = service.stop()
        errors = [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line]
        cases.append(Case("service: its log after all of the above", "no error line", nested_json))
        failed += bool(errors)
        observed = "; ".join(errors[:2])[:200] if errors else "ok: no error lines"
        print(
            f"{cases[-1].name:<42} | {cases[-1].expected:<60} | {observed} | "
            f"{'FAIL' if errors else 'ok'}"
        )
    print(
        f"{len(cases) - failed} of {len(cases)} cases as expected in {time.perf_counter() - t0:.0f} s"
    )
    if not args.keep and not args.work:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
