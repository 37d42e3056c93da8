"""Screenshots of the workspace and /docs for the README (`make screenshots`, after `make demo`).

Serves the demo home's champion (LEADML_HOME, default: this checkout) on a loopback port,
opens each page in the system's Chromium through Playwright with every outside host refused,
and writes docs/workspace-<page>.png. The rules page is shown after comparing the sample
rules; the lead lookup with a lead the demo scored. Nothing here is needed to run leadml.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from leadml.api import create_app

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium: `make browser` installs Debian's", file=sys.stderr)
        return 1
    app = create_app()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    scores = ROOT / "out" / "later_scores.csv"
    lead = next(csv.DictReader(scores.open()))["lead_id"] if scores.exists() else ""
    out = ROOT / "docs"
    blocked: list[str] = []

    def route(r) -> None:
        if (
            r.request.url.startswith("data:")
            or urlsplit(r.request.url).netloc == f"127.0.0.1:{port}"
        ):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1200, "height": 1400}).new_page()
        page.route("**/*", route)
        shots = {
            "overview": "/workspace/overview",
            "rules": "/workspace/rules",
            "bands": "/workspace/bands?sql=0.6&mql=0.25",
            "lead": f"/workspace/lead?lead_id={lead}",
            "docs": "/docs",
        }
        for name, path in shots.items():
            answer = page.goto(base + path)
            if answer is None or answer.status >= 400:
                print(f"{path}: {answer.status if answer else 'no answer'}, left out")
                continue
            if name == "rules":
                page.get_by_role("button", name="Compare").first.click()
                page.wait_for_load_state()
            if name == "docs":
                page.locator(".opblock-summary-path").first.wait_for()
            target = out / f"workspace-{name}.png"
            page.screenshot(path=str(target))
            print(f"wrote {target.relative_to(ROOT)}")
        browser.close()
    server.should_exit = True
    if blocked:
        print(f"outside requests refused (the pages must work offline): {blocked}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LEADML_HOME", str(ROOT))
    sys.exit(main())
