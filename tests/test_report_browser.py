"""The report in a real browser: Playwright driving Debian's Chromium (never a downloaded one).

Each test loads report.html from disk, fails on any console error, page error or request that
leaves the file, and drives the page as a reader would: click a point of the front, move a filter,
sort and compare rows, take a screenshot.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from roofline.cli.main import main

from .test_report import SERVING, SMALL

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")

#: Debian's headless shell first (what .ci/run installs), then the full Chromium.
CANDIDATES = [os.environ.get("BROWSER_PATH", ""), "/usr/lib/chromium/chromium-headless-shell", "/usr/bin/chromium",
              shutil.which("chromium") or ""]
CHROMIUM = next((c for c in CANDIDATES if c and os.access(c, os.X_OK)), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium binary (apt-get install chromium-headless-shell, or set BROWSER_PATH)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]


def sweep_report(spec: dict, folder: Path) -> Path:
    """The report of a sweep of ``spec`` run in ``folder`` (through the CLI, as a user makes one)."""
    f = folder / "sweep.yaml"
    f.write_text(yaml.safe_dump(spec))
    for args in (["sweep", str(f), "--out", str(folder / "run"), "--no-plots", "--workers", "1"],
                 ["report", str(folder / "run")]):
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code in (0, None)
    return folder / "run" / "report.html"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    return sweep_report(SMALL, tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, report) -> Iterator[object]:
    """The report at a desktop size; after the test, no console error and nothing fetched."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith(("file:", "data:", "blob:")) else None)
    page.goto(report.as_uri())
    page.wait_for_selector("#pareto .scatterlayer .points path")
    yield page
    page.close()
    assert not problems, problems


def _table_rows(page) -> int:
    return page.locator("#best-table tbody tr").count()


def test_page_states_its_sizes_and_a_clicked_point_shows_its_breakdown(page, tmp_path: Path) -> None:
    sizes = page.locator("#sizes").inner_text()
    assert "48 rows in the run (32 feasible)" in sizes and "embeds 48" in sizes
    assert page.locator("#filter-controls .filter").count() == 1 + 4 + 1  # feasible, 4 swept, fixed values
    assert page.locator("#param-plots .param-plot").count() == 3  # hardware, L2, HBM bandwidth
    assert page.locator("#assumptions dt").count() >= 5
    assert _table_rows(page) == 32  # feasible rows only, by default
    assert page.locator("#breakdown").count() == 0
    front = page.locator("#pareto .scatterlayer .trace").filter(has=page.locator(".js-line")).locator(".points path")
    assert front.count() >= 2
    front.nth(1).click(force=True)  # plotly finds the point under the mouse on its drag layer
    page.wait_for_selector("#breakdown .barlayer .bars path")
    kinds = page.locator("#breakdown .legendtext").all_text_contents()
    assert {"GEMM", "attention", "collectives"} <= set(kinds)
    assert page.locator("#memory .barlayer .bars path").count() == 3  # weights, KV cache, activations
    assert "roofline predict -m llama-3-8b" in page.locator("#details code").inner_text()
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000


def test_moving_a_filter_shrinks_the_table_and_the_front(page) -> None:
    points_before = page.locator("#pareto .scatterlayer .points path").count()
    # L2 "from" slider to its last value: only L2 = 128 MiB is left (2 devices x 2 feasible HBM x 2 prefetch)
    page.locator('input[data-param="l2_capacity_MiB"][data-end="low"]').fill("3")
    assert _table_rows(page) == 8
    assert page.locator("#pareto .scatterlayer .points path").count() < points_before
    assert "8 of 48" in page.locator("#filtered-count").inner_text()
    page.locator('input[data-param="hardware"][value="h200-sxm"]').uncheck()
    assert _table_rows(page) == 4
    page.locator("#feasible-only").uncheck()  # the 2000 GB/s rows that miss the TPOT limit come back
    assert _table_rows(page) == 6
    page.locator("#reset-filters").click()
    assert _table_rows(page) == 32
    # per cost dollar, then per TCO dollar: the per-parameter plots change metric
    assert page.locator("#param-l2_capacity_MiB .ytitle").text_content() == "tok/s per kUSD"
    page.locator("#per-cost-metric").select_option("tok_s_per_tco_kusd")
    assert page.locator("#param-l2_capacity_MiB .ytitle").text_content() == "tok/s per TCO kUSD"


def test_table_sorts_and_compares_two_configurations(page) -> None:
    page.locator('#best-table th[data-col="tpot_ms"]').click()
    col = page.locator('#best-table th').all_inner_texts().index("TPOT ms")
    tpot = [float(t.replace(",", "")) for t in page.locator(f"#best-table tbody tr td:nth-child({col + 1})").all_inner_texts()]
    assert tpot == sorted(tpot)  # a time: lowest first
    page.locator('#best-table th[data-col="tpot_ms"]').click()
    tpot = [float(t.replace(",", "")) for t in page.locator(f"#best-table tbody tr td:nth-child({col + 1})").all_inner_texts()]
    assert tpot == sorted(tpot, reverse=True)  # a second click reverses
    rows = page.locator("#best-table tbody tr")
    rows.nth(0).locator('input[name="compare-A"]').check()
    rows.nth(5).locator('input[name="compare-B"]').check()
    page.wait_for_selector("#compare-table")
    assert page.locator("#compare-table tr.diff").count() >= 1  # they differ in some parameter
    assert page.locator("#compare-breakdown .barlayer .bars path").count() >= 2


def test_serve_report_shows_the_frontier_and_every_load(browser, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--concurrency", "1,4,16", "--report"])
    assert e.value.code in (0, None)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith(("file:", "data:", "blob:")) else None)
    page.goto((tmp_path / "report.html").as_uri())
    page.wait_for_selector("#frontier .scatterlayer .points path")
    assert page.locator("#frontier .scatterlayer .points path").count() == 3  # one point per concurrency
    assert page.locator("#rows tbody tr").count() == 3
    # headers are the metric registry's short labels, the full label with its unit as the tooltip
    headers = page.locator("#rows thead th")
    assert headers.nth(1).inner_text() == "TTFT ms" and headers.nth(1).get_attribute("title") == "TTFT (ms)"
    assert "goodput_tok_s_per_kusd" not in page.locator("#rows thead").inner_text()
    assert page.locator("#assumptions li").count() >= 5
    shot = tmp_path / "serve-report.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    assert not problems, problems
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_serving_sweeps_point_says_what_its_breakdown_is_and_how_to_serve_it(browser, tmp_path: Path) -> None:
    report = sweep_report(SERVING, tmp_path)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(report.as_uri())
    page.wait_for_selector("#pareto .scatterlayer .points path")
    workload = page.locator("#assumptions dd").nth(4).inner_text()
    assert "closed loop of 32 requests in flight" in workload and "SLO TTFT <= 1000 ms, TPOT <= 20 ms" in workload
    assert "max_num_seqs 512" in workload and not workload.startswith("batch")  # not the static batch
    page.locator("#pareto .scatterlayer .points path").first.click(force=True)
    page.wait_for_selector("#breakdown .barlayer .bars path")
    assert "static batch" in page.locator("#details h3").nth(1).inner_text()
    assert "closed loop of 32" in page.locator("#breakdown-serving").inner_text()
    assert page.locator("#serve-command").inner_text().startswith("roofline serve -m llama-3-8b -H h100-sxm")
    assert page.locator("#predict-command").inner_text().startswith("roofline predict -m llama-3-8b")
    page.screenshot(path=str(tmp_path / "serving-report.png"), full_page=True)
    page.close()
    assert not problems, problems
