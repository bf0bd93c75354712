"""Measure an explorer page in headless Chromium: size, frames, slider redraw time, console errors,
and a full-page screenshot. Needs the `dev` extra (selenium) and the Debian packages `chromium` and
`chromium-driver`.

    python -m grok_lightning.explorer.measure <explorer.html> [--shot page.png]

Redraw time: every frame in turn is drawn through the page's own setFrame and timed with
performance.now(), once for the drawing calls alone and once with a pixel read of every canvas,
which makes the browser finish rasterising before the clock stops.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path
from typing import Optional

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
DRIVERS = ("chromedriver",)


def browser_missing() -> Optional[str]:
    """Why no headless browser can start here (one line), or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not any(shutil.which(b) for b in BROWSERS):
        return "no chromium binary (apt-get install -y chromium chromium-driver)"
    if not any(shutil.which(d) for d in DRIVERS):
        return "no chromedriver (apt-get install -y chromium-driver)"
    return None


def start_browser(width: int = 1300, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = next(shutil.which(b) for b in BROWSERS if shutil.which(b))
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--force-device-scale-factor=1",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = next(shutil.which(d) for d in DRIVERS if shutil.which(d))
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def full_page_screenshot(driver, path: Path, width: int = 1300) -> Path:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(int(height) + 120, 12000))
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path


REDRAW_JS = """
const ex = window.explorer, n = ex.nFrames, canvases = Array.from(document.querySelectorAll('canvas'));
const plain = [], flushed = [];
for (let i = 0; i < n; i++) {
  let t0 = performance.now(); ex.setFrame(i); plain.push(performance.now() - t0);
  t0 = performance.now(); ex.setFrame((i + 1) % n);
  for (const c of canvases) c.getContext('2d').getImageData(0, 0, 1, 1);
  flushed.push(performance.now() - t0);
}
return [plain, flushed];
"""


SHOW_FRAME_JS = """
const ex = window.explorer;
if (ex && ex.setFrame) ex.setFrame(arguments[0] < 0 ? ex.nFrames - 1 : arguments[0]);
"""


def measure(driver, page: Path) -> dict:
    driver.get(page.resolve().as_uri())
    out = {"bytes": page.stat().st_size, "errors": console_errors(driver)}
    info = driver.execute_script(
        "return window.explorer ? [window.explorer.kind, window.explorer.nFrames || 0] : null"
    )
    if not info:
        out["errors"].append("window.explorer missing: the page did not start")
        return out
    out["kind"], out["frames"] = info
    if out["frames"]:
        plain, flushed = driver.execute_script(REDRAW_JS)
        for name, values in (("redraw_ms", plain), ("redraw_flushed_ms", flushed)):
            values = sorted(values)
            out[name] = {
                "median": round(statistics.median(values), 2),
                "p95": round(values[int(0.95 * (len(values) - 1))], 2),
                "max": round(values[-1], 2),
            }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grok_lightning.explorer.measure")
    parser.add_argument("page", type=Path)
    parser.add_argument("--shot", type=Path, help="write a full-page screenshot here")
    parser.add_argument("--frame", type=int, default=-1, help="the frame shown in the screenshot (-1: last)")
    args = parser.parse_args(argv)
    if not args.page.is_file():
        print(f"error: {args.page}: no such file", file=sys.stderr)
        return 2
    reason = browser_missing()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    driver = start_browser()
    try:
        result = measure(driver, args.page)
        if args.shot:
            driver.execute_script(SHOW_FRAME_JS, args.frame)
            full_page_screenshot(driver, args.shot)
    finally:
        driver.quit()
    mb, frames = result["bytes"] / 1e6, result.get("frames", 0)
    print(f"{args.page}: {mb:.2f} MB, {frames} frames, kind {result.get('kind')}")
    for name in ("redraw_ms", "redraw_flushed_ms"):
        if name in result:
            r = result[name]
            print(f"  {name}: median {r['median']}, p95 {r['p95']}, max {r['max']}")
    for e in result["errors"]:
        print(f"  console error: {e}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
