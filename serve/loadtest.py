"""Load-test the scoring service (or any JSON POST endpoint) with wrk.

    python serve/loadtest.py --url 'http://127.0.0.1:8000/predict?reasons=false' --body lead.json
    python serve/loadtest.py --url http://127.0.0.1:8000/predict --body batch.json \\
        --connections 32 --duration 30 --header 'X-API-Key: secret' --json

It writes a temporary wrk Lua script that POSTs the body (Content-Type: application/json)
on every request and, when wrk is done, prints the figures as one machine-readable line:
requests, duration, responses with an error status, socket errors and latency percentiles.
`run()` returns them as a dict; `benchmarks/serve.py` imports it by path (serve/ is not a
package). From the command line the exit status is 1 when any request failed (an HTTP
error status, a socket error or a timeout) or none completed, 2 when wrk could not run
(missing, bad options, server refusing connections).

Needs wrk (Debian/Ubuntu: `apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

MARKER = "LOADTEST_RESULT "
SOCKET_ERRORS = ("connect", "read", "write", "timeout")

# Runs in every wrk thread (and in the main Lua state, which calls done()).
LUA_SCRIPT = r"""
local path = os.getenv("LOADTEST_BODY")
local f = assert(io.open(path, "rb"), "cannot open the body file " .. tostring(path))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
local has_type = false
for k, _ in pairs(wrk.headers) do
  if string.lower(k) == "content-type" then has_type = true end
end
if not has_type then wrk.headers["Content-Type"] = "application/json" end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "%s{\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"status_errors\":%d," ..
    "\"connect\":%d,\"read\":%d,\"write\":%d,\"timeout\":%d," ..
    "\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,\"max_us\":%d,\"mean_us\":%.1f}\n",
    "__MARKER__", summary.requests, summary.duration, summary.bytes, e.status,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
""".replace("__MARKER__", MARKER)


class LoadTestError(RuntimeError):
    """wrk is missing, could not run, or printed no figures."""


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise LoadTestError(
            "wrk is not installed (or not on PATH). Install it with `apt-get install wrk` "
            "(Debian/Ubuntu), or build it from https://github.com/wg/wrk"
        )
    return path


def run(
    url: str,
    body_path: str | os.PathLike,
    connections: int,
    duration: int,
    threads: int = 2,
    headers: Iterable[str] = (),
    timeout: int = 10,
) -> dict:
    """POST the JSON body in `body_path` to `url` for `duration` seconds over `connections`.

    Returns requests_per_s, p50_ms, p90_ms, p99_ms, max_ms, non_2xx (responses with an HTTP
    error status: wrk counts status >= 400), errors (socket errors: connect, read, write and
    timeouts, broken down in socket_errors), plus requests, duration_s, mean_ms and the
    settings used. A request slower than `timeout` seconds counts as a timeout error.
    """
    body = Path(body_path)
    if not body.is_file():
        raise LoadTestError(f"{body}: no such body file")
    try:
        json.loads(body.read_bytes())
    except ValueError as exc:
        raise LoadTestError(f"{body}: not valid JSON ({exc})") from None
    duration, connections = int(duration), int(connections)
    if duration < 1 or connections < 1:
        raise LoadTestError("duration and connections must be at least 1")
    threads = max(1, min(int(threads), connections))  # wrk needs connections >= threads
    cmd = [
        wrk_path(),
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "--timeout",
        f"{int(timeout)}s",
    ]
    for h in headers:
        if ":" not in h:
            raise LoadTestError(f"header {h!r}: expected 'Name: value'")
        cmd += ["-H", h]
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(LUA_SCRIPT)
        cmd += ["-s", str(script), url]
        env = {**os.environ, "LOADTEST_BODY": str(body.resolve())}
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=duration + 60, check=False
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        detail = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise LoadTestError(f"wrk failed (exit {proc.returncode}) on {url}: {detail}")
    raw = json.loads(lines[-1][len(MARKER) :])
    seconds = raw["duration_us"] / 1e6
    socket_errors = {k: int(raw[k]) for k in SOCKET_ERRORS}
    return {
        "url": url,
        "connections": connections,
        "threads": threads,
        "duration_s": round(seconds, 3),
        "requests": int(raw["requests"]),
        "requests_per_s": round(raw["requests"] / seconds, 2) if seconds > 0 else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "mean_ms": round(raw["mean_us"] / 1000, 3),
        "non_2xx": int(raw["status_errors"]),
        "errors": sum(socket_errors.values()),
        "socket_errors": socket_errors,
        "response_mib": round(raw["bytes"] / 2**20, 2),
    }


def failed(result: dict) -> bool:
    """True when any request failed or none completed."""
    return result["non_2xx"] > 0 or result["errors"] > 0 or result["requests"] == 0


def summary_line(r: dict) -> str:
    err = ", ".join(f"{k} {v}" for k, v in r["socket_errors"].items() if v) or "none"
    return (
        f"{r['requests_per_s']:,.1f} req/s | latency p50 {r['p50_ms']:.2f} ms, "
        f"p90 {r['p90_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms | "
        f"non-2xx {r['non_2xx']:,} | socket errors: {err} | "
        f"{r['requests']:,} requests in {r['duration_s']:.1f} s over {r['connections']} "
        f"connections, {r['threads']} threads"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Load-test a JSON POST endpoint (the leadml scoring service's /predict) "
        "with wrk: requests/s, latency p50/p90/p99/max, HTTP error responses and socket errors.",
        epilog="examples:\n"
        "  python serve/loadtest.py --url 'http://127.0.0.1:8000/predict?reasons=false' "
        "--body lead.json\n"
        "  python serve/loadtest.py --url http://127.0.0.1:8000/predict --body batch.json "
        "-c 32 -d 30 --header 'X-API-Key: secret' --json\n\n"
        "Exit status: 0 all requests answered 2xx/3xx, 1 some failed (HTTP status >= 400, "
        "socket error, timeout) or none completed, 2 usage error, wrk missing "
        "(apt-get install wrk) or wrk could not run (e.g. connection refused).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--url",
        required=True,
        help="full URL including path and query, e.g. "
        "'http://127.0.0.1:8000/predict?reasons=false'",
    )
    p.add_argument(
        "--body",
        required=True,
        type=Path,
        metavar="FILE",
        help="JSON file POSTed as the body of every request",
    )
    p.add_argument(
        "-c", "--connections", type=int, default=8, help="connections kept open (default 8)"
    )
    p.add_argument(
        "-d", "--duration", type=int, default=10, help="seconds to run, whole seconds (default 10)"
    )
    p.add_argument(
        "-t",
        "--threads",
        type=int,
        default=2,
        help="wrk threads (default 2; at most --connections)",
    )
    p.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="extra request header, repeatable (e.g. 'X-API-Key: secret')",
    )
    p.add_argument(
        "--timeout",
        type=int,
        default=10,
        help="seconds before a request counts as a timeout error (default 10)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON line with the figures instead of a human-readable line",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(
            args.url,
            args.body,
            args.connections,
            args.duration,
            args.threads,
            args.header,
            args.timeout,
        )
    except LoadTestError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else f"{args.url}: {summary_line(result)}")
    if failed(result):
        if not args.json:
            print("loadtest: some requests failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
