"""The report as a researcher sees it: opened in headless Chromium (Debian's package, installed here when missing and
possible), the page renders without console errors, every figure loads, and the screenshot is kept as an artefact
(tests/artifacts/report.png, ignored by git)."""

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


def _chromium() -> str | None:
    """The chromium binary, installing Debian's package first when it is missing and apt-get can run as root."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found or not shutil.which("apt-get") or os.geteuid() != 0:
        return found
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"], capture_output=True,
                   timeout=900, check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed and cannot be installed here (needs apt-get as root)")
    return exe


def browse(exe: str, page: Path, shot: Path) -> tuple[list[str], list[str]]:
    """Open `page` (with the image probe appended) headless; returns (console errors, console messages)."""
    probed = page.with_name(page.stem + ".probe.html")
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    out = subprocess.run([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                          "--virtual-time-budget=5000", f"--screenshot={shot}", "--window-size=1280,2400",
                          probed.as_uri()], capture_output=True, text=True, timeout=120, check=False)
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
