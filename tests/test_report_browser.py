"""The HTML report in a real browser: headless Chromium loads it, every image decodes, no console errors.

A copy of the report gets a small probe script (the report itself has none) that, on the load
event, writes into the DOM how many images there are, which did not decode (``naturalWidth`` 0)
and every error event (script errors and failed resource loads); ``--dump-dom`` reads it back.
Chromium's console goes to stderr (``--enable-logging=stderr``): any ``CONSOLE`` line fails the
test. A negative control (a page with a console error and a broken image) proves the harness
detects both. A screenshot is kept in ``tests/artifacts/`` (ignored by git through its own
``.gitignore``; ``MEMORYBENCH_TEST_ARTIFACTS`` moves it).

Without Chromium the test is skipped, unless ``CI`` is set (CI installs Debian's ``chromium``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from test_reports import write_synthetic_tree

from memorybench.reports.build import build_report

ARTIFACTS = Path(os.environ.get("MEMORYBENCH_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (event) {
  var target = event.target || {};
  window.__errors.push(String(event.message || target.src || target.href || "error"));
}, true);
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var probe = document.createElement("pre");
  probe.id = "__probe";
  probe.textContent = JSON.stringify({images: images.length, broken: broken.map(function (i) { return i.alt || i.src.slice(0, 80); }),
                                      errors: window.__errors});
  document.body.appendChild(probe);
});
</script>"""
CONSOLE = re.compile(r":CONSOLE[^\]]*\]|Uncaught")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("CI is set but no chromium binary was found (CI installs Debian's chromium package)")
    pytest.skip("headless browser test needs chromium (apt-get install -y chromium)")


def run_browser(binary: str, profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={profile}", *arguments], capture_output=True, text=True, timeout=90
    )


def probe_page(binary: str, page: Path, tmp_path: Path) -> tuple[dict, list[str]]:
    """Load ``page`` (a probe-injected copy) and return the probe's findings and Chromium's console lines."""
    probed = page.with_name(f"probe_{page.name}")
    probed.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    done = run_browser(
        binary, tmp_path / f"profile-{page.stem}", "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()
    )
    match = re.search(r'<pre id="__probe">(.*?)</pre>', done.stdout, re.S)
    assert match, f"the probe did not report (rc {done.returncode}); stderr tail:\n{done.stderr[-2000:]}"
    findings = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    console = [line for line in done.stderr.splitlines() if CONSOLE.search(line)]
    return findings, console


@pytest.fixture(scope="module")
def browser() -> str:
    return chromium()


def test_harness_detects_console_errors_and_broken_images(browser: str, tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>bad</title></head><body>'
        '<script>console.error("deliberate failure")</script><img src="missing.png" alt="missing"></body></html>'
    )
    findings, console = probe_page(browser, page, tmp_path)
    assert findings["broken"] == ["missing"] and findings["errors"]
    assert any("deliberate failure" in line for line in console)


def test_report_renders_in_chromium_with_every_image(browser: str, tmp_path: Path) -> None:
    out = tmp_path / "report"
    build_report(write_synthetic_tree(tmp_path / "results"), out)
    figures = sorted((out / "figures").glob("*.png"))
    assert len(figures) >= 8

    findings, console = probe_page(browser, out / "report.html", tmp_path)
    assert findings["images"] == len(figures)
    assert findings["broken"] == [], f"images that did not load: {findings['broken']}"
    assert findings["errors"] == [], f"error events: {findings['errors']}"
    assert console == [], "console messages:\n" + "\n".join(console)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")
    shot = ARTIFACTS / "report_screenshot.png"
    shot.unlink(missing_ok=True)
    done = run_browser(
        browser,
        tmp_path / "profile-shot",
        "--window-size=1280,2400",
        f"--screenshot={shot}",
        (out / "report.html").as_uri(),
    )
    assert shot.is_file(), done.stderr[-2000:]
    height, width = plt.imread(shot).shape[:2]
    assert (width, height) == (1280, 2400)


INTERACT = """<script>
window.addEventListener("load", function () {
  var table = document.getElementById("table-synth_elbo");
  var header = table.tHead.rows[table.tHead.rows.length - 1].cells;
  var rows = function () {
    return Array.prototype.filter.call(table.tBodies[0].rows, function (r) { return !r.hidden; })
      .map(function (r) { return r.cells[1].textContent + "|" + r.cells[2].textContent.split(" ")[0]; });
  };
  var column = Array.prototype.findIndex.call(header, function (th) { return th.textContent.indexOf("NELBO-cond") === 0; });
  header[column].click();
  var ascending = rows();
  header[column].click();
  var descending = rows();
  var box = table.previousElementSibling;
  box.value = "dkm";
  box.dispatchEvent(new Event("input"));
  var probe = document.createElement("pre");
  probe.id = "__interact";
  probe.textContent = JSON.stringify({ascending: ascending, descending: descending, filtered: rows(),
    sort: header[column].getAttribute("aria-sort"), box: box.tagName + ":" + box.className,
    index: document.querySelectorAll("ol.figure-index a").length, figures: document.querySelectorAll("figure").length});
  document.body.appendChild(probe);
});
</script>"""


def test_tables_sort_and_filter_and_figures_are_indexed(browser: str, tmp_path: Path) -> None:
    out = tmp_path / "report"
    build_report(write_synthetic_tree(tmp_path / "results"), out)
    page = out / "interact.html"
    page.write_text((out / "report.html").read_text(encoding="utf-8").replace("</body>", INTERACT + "</body>", 1))
    done = run_browser(
        browser, tmp_path / "profile-interact", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()
    )
    match = re.search(r'<pre id="__interact">(.*?)</pre>', done.stdout, re.S)
    assert match, done.stderr[-2000:]
    found = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    for order, rows in (("ascending", found["ascending"]), ("descending", found["descending"])):
        cells = [row.split("|")[1] for row in rows]
        values = [float(cell) for cell in cells if cell != "—"]
        assert values == sorted(values, reverse=order == "descending") and len(values) >= 3
        assert cells[len(values) :] == ["—"] * (len(cells) - len(values))  # empty cells last both ways
    assert found["sort"] == "descending"
    assert found["filtered"] and all(row.startswith("dkm|") for row in found["filtered"])
    assert found["box"] == "INPUT:table-filter"
    assert found["index"] == found["figures"] > 0
    assert not [line for line in done.stderr.splitlines() if CONSOLE.search(line)]
