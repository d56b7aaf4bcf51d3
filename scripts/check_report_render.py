#!/usr/bin/env python3
"""Renders a run's report.html in headless Chromium: no console errors, and a full-page screenshot.

    apt-get install -y chromium        # Debian's package
    python3 scripts/check_report_render.py runs/default/report.html [--screenshot report.png]

Chromium runs with its console logged to stderr (`--enable-logging=stderr --v=0`); every console message at
level ERROR (uncaught exceptions, failed loads of the SVG charts the page embeds) fails the check, as does a
page that does not load. The screenshot is as tall as the page (its height is measured first with
--dump-dom's rendered document and a generous window), so every table and chart is in it. Also checks that
every `<img src>` the page names exists next to it. Exit status 1 when a check fails.
"""
import argparse, re, shutil, subprocess, sys, tempfile
from html.parser import HTMLParser
from pathlib import Path


class Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.tables, self.charts = [], 0, 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img" and "src" in a:
            self.sources.append(a["src"])
        if tag == "table":
            self.tables += 1
        if tag == "svg":
            self.charts += 1


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    raise SystemExit("no chromium on PATH (apt-get install -y chromium)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report")
    ap.add_argument("--screenshot", help="PNG to write (default: report.png beside the report)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=0, help="window height (default: estimated from the page)")
    args = ap.parse_args()
    report = Path(args.report).resolve()
    shot = Path(args.screenshot or report.with_suffix(".png")).resolve()
    html = report.read_text(encoding="utf-8")
    parser = Images()
    parser.feed(html)
    failures = [f"missing image {s}" for s in parser.sources if not s.startswith("data:") and not (report.parent / s).exists()]
    # Height: about 34 px a table row or text line, 420 px a chart; a tall window costs only memory.
    height = args.height or max(2000, 34 * html.count("<tr") + 34 * html.count("<p") + 34 * html.count("<li") + 460 * (len(parser.sources) + parser.charts) + 600)
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
               "--enable-logging=stderr", "--v=0", f"--window-size={args.width},{height}", f"--screenshot={shot}",
               "--virtual-time-budget=5000", report.as_uri()]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    console = [l for l in r.stderr.splitlines() if "CONSOLE" in l]
    errors = [l for l in console if re.search(r"ERROR|Uncaught|Failed to load", l)]
    print(f"chromium exit {r.returncode}; {len(console)} console message(s), {len(errors)} error(s); "
          f"{parser.tables} table(s), {parser.charts} inline chart(s), {len(parser.sources)} image(s); screenshot {shot} ({args.width}×{height})")
    for l in console:
        print("  " + l)
    if r.returncode != 0:
        failures.append(f"chromium exited {r.returncode}: {r.stderr[-2000:]}")
    failures += [f"console error: {e}" for e in errors]
    if not shot.exists() or shot.stat().st_size == 0:
        failures.append("no screenshot written")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("report renders without console errors")


if __name__ == "__main__":
    main()
