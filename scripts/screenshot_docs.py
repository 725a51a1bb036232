"""Screenshots of the built documentation site in headless Chromium, opened from disk.

The site is read as a new user reads it after ``make docs``: ``file://.../site/<page>``, no
server. Each page of ``PAGES`` is shot at a desktop width (1400 px) and a phone width
(390 px); a page given with ``?q=<words>`` opens with the search box holding them, which
shows whether search works offline. Look at every picture: this is the check in a real
browser that tests/test_site.py (HTML only) cannot make.

    make docs
    python scripts/screenshot_docs.py                  # site/ -> screenshots/
    python scripts/screenshot_docs.py --site /tmp/site --out /tmp/shots

Needs Chromium (Debian: ``apt-get install chromium``); CI does not run this.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the home page, tutorials (their output computed at build), concept pages (narrow tables of class names among them), a
# migration guide, gallery pages, API pages, and search
PAGES = [
    "index.html",
    "tutorials/quickstart.html",
    "tutorials/custom-ilp.html",
    "tutorials/yaml-ilp.html",
    "estimators.html",
    "choosing-a-method.html",
    "spec.html",
    "migration/pyepo.html",
    "gallery/index.html",
    "gallery/pyepo.html",
    "gallery/warcraft.html",
    "gallery/l2x.html",
    "gallery/distribution.html",
    "api/index.html",
    "api/torch.html",
    "api/estimators.html",
    "index.html?q=oracle",
]
# (name, width, height) in CSS pixels; phones are shot at their own height, desktops taller
VIEWPORTS = [("desktop", 1400, 1800), ("phone", 390, 1600)]


def find_browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("no Chromium found: apt-get install chromium (Debian), or pass --browser")


def shot_name(page: str, viewport: str) -> str:
    """``gallery/l2x.html`` -> ``gallery-l2x-desktop.png``; a query becomes ``-q-<words>``."""
    path, _, query = page.partition("?")
    stem = path.removesuffix(".html").replace("/", "-")
    if query:
        stem += "-" + query.replace("=", "-").replace("&", "-")
    return f"{stem}-{viewport}.png"


def screenshot(browser: str, url: str, out: Path, width: int, height: int, profile: Path) -> None:
    subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=8000",  # let the theme's scripts and the search worker run
            f"--screenshot={out}", url,
        ],
        check=True, capture_output=True, timeout=120,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="the built site (make docs)")
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots", help="where the PNGs go")
    parser.add_argument("--browser", default=None, help="Chromium's executable (found on PATH otherwise)")
    args = parser.parse_args(argv)

    site = args.site.resolve()
    if not (site / "index.html").is_file():
        sys.exit(f"no built site in {site}: run `make docs` first")
    browser = args.browser or find_browser()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        for page in PAGES:
            for viewport, width, height in VIEWPORTS:
                out = args.out / shot_name(page, viewport)
                screenshot(browser, site.as_uri() + "/" + page, out, width, height, Path(profile))
                print(out)


if __name__ == "__main__":
    main()
