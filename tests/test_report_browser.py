"""The report as a researcher sees it: opened in headless Chromium, the page renders without console errors, every
figure loads, and the screenshot is kept as an artefact (tests/artifacts/report.png, ignored by git).

The test installs nothing: it uses a Chromium that is already there ($TOMARENA_CHROMIUM, Debian's /usr/bin/chromium,
a chromium/chrome on PATH, or a browser Playwright downloaded before) and is skipped, with the reason, when there is
none (on Debian: apt-get install -y chromium)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_analysis_report import _sweep, _tournament
from tomarena.analysis.report import build_report

ARTIFACTS = Path(__file__).parent / "artifacts"
PROBE = """<script>window.addEventListener('load', () => {
  const bad = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  if (bad.length) { console.error('IMG_FAIL ' + bad.join(',')); }
  else { console.log('IMAGES_OK ' + document.images.length); }
});</script>"""
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: where Playwright keeps the browsers it downloaded (used when present, never downloaded here)
PLAYWRIGHT = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH", Path.home() / ".cache" / "ms-playwright"))
#: start-up flags for a closed network: no background connections, no first-run work
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
SKIP_REASON = ("no Chromium found (looked at $TOMARENA_CHROMIUM, /usr/bin/chromium, " + ", ".join(NAMES) +
               f" on PATH, Playwright's browsers in {PLAYWRIGHT}); the test installs nothing: on Debian run "
               "`apt-get install -y chromium`, or point TOMARENA_CHROMIUM at a Chromium binary")


def find_chromium() -> str | None:
    """The first Chromium binary already on this machine, or None; nothing is installed or downloaded."""
    named = [os.environ.get("TOMARENA_CHROMIUM", ""), "/usr/bin/chromium"]
    candidates = [*named, *(shutil.which(n) or "" for n in NAMES),
                  *map(str, sorted(PLAYWRIGHT.glob("chromium-*/chrome-linux*/chrome"), reverse=True))]
    return next((c for c in candidates if c and os.access(c, os.X_OK) and Path(c).is_file()), None)


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = find_chromium()
    if exe is None:
        pytest.skip(SKIP_REASON)
    return exe


def browse(exe: str, page: Path, shot: Path) -> tuple[list[str], list[str]]:
    """Open `page` (with the image probe appended) headless; returns (console errors, console messages)."""
    probed = page.with_name(page.stem + ".probe.html")
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    profile = shot.with_name(shot.stem + ".profile")  # a fresh, empty user-data-dir per page
    out = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                          "--virtual-time-budget=5000", f"--screenshot={shot}", "--window-size=1280,2400",
                          probed.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    shutil.rmtree(profile, ignore_errors=True)
    console = re.findall(r'CONSOLE[^\]]*\] "(.*?)", source', out.stderr)
    errors = [m for m in console if m.startswith(("Uncaught", "IMG_FAIL")) or "Error" in m.split(":")[0]]
    return errors, console


def test_report_renders_in_chromium_with_every_figure(chromium: str, tmp_path: Path) -> None:
    rep = build_report([_sweep(tmp_path / "sweep"), _tournament(tmp_path / "tour")], tmp_path / "out")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    errors, console = browse(chromium, rep.html, shot)
    n_figures = rep.html.read_text(encoding="utf-8").count("<img")
    assert errors == [] and n_figures >= 3
    assert f"IMAGES_OK {n_figures}" in console
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_browser_check_fails_on_a_broken_page(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><img alt='gone' src='data:image/png;base64,AAAA'><script>nope()</script></body>"
                    "</html>", encoding="utf-8")
    errors, _ = browse(chromium, page, tmp_path / "b.png")
    assert any(e.startswith("Uncaught ReferenceError") for e in errors) and "IMG_FAIL gone" in errors


def test_no_chromium_means_a_skip_that_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The finder looks only at what is installed: with nothing there it answers None (the fixture then skips with
    SKIP_REASON), and a binary named by TOMARENA_CHROMIUM is taken as is."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "access", lambda path, mode: str(path).startswith(str(tmp_path)))
    monkeypatch.setenv("TOMARENA_CHROMIUM", str(tmp_path / "absent"))
    monkeypatch.setattr(f"{__name__}.PLAYWRIGHT", tmp_path / "ms-playwright")
    assert find_chromium() is None
    assert "installs nothing" in SKIP_REASON and "apt-get install -y chromium" in SKIP_REASON
    exe = tmp_path / "my-chromium"
    exe.write_text("#!/bin/sh\n")
    monkeypatch.setenv("TOMARENA_CHROMIUM", str(exe))
    assert find_chromium() == str(exe)
