"""The notebooks and a sweep's report as a person sees them in chromium: JupyterLab renders the
explorer's widgets, pressing Run adds a point to the failure curve, the quick start's tables
show, and ``report.html`` opened from ``file://`` loads every image. Screenshots of each page
are written to the test's ``tmp_path``.

JupyterLab runs on a free loopback port with a token; Debian's ``chromium`` is driven by
Playwright through ``executable_path`` (Playwright never downloads a browser here). ``make test``
installs both (chromium through apt-get when root, Playwright with the dev extra); where either
is missing every test here is skipped with the one-line reason.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from kato.lab.report import sweep
from kato.lab.spec import NOOP
from kato.processes import free_port, stop

pytest.importorskip("playwright", reason="playwright is not installed: make test installs it")
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]

#: Generous waits for a loaded 2-core machine: each is a condition, never a sleep.
WAIT_MS = 90_000
expect.set_options(timeout=WAIT_MS)


def _chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, through Playwright. Module-scoped: Playwright's sync API
    runs an event loop on the main thread until it stops, and the suite's later tests call
    ``asyncio.run``, which refuses to run inside it."""
    executable = _chromium()
    if executable is None:
        pytest.skip("chromium is not installed: make test installs it when root (apt-get)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


@dataclass
class Watched:
    """A page and every JavaScript error it reported (console errors, uncaught exceptions)."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def shot(self, path: Path) -> Path:
        self.page.screenshot(path=path, full_page=True)
        return path


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    found = Watched(page)
    page.on("console", lambda m: m.type == "error" and found.errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: found.errors.append(f"uncaught: {e}"))
    yield found
    context.close()


@dataclass(frozen=True)
class Lab:
    """A JupyterLab server on a copy of ``notebooks/`` (autosave never writes the originals)."""

    url: str
    token: str
    root: Path

    def notebook(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """``jupyter lab`` on 127.0.0.1 with a token, its own config (the news prompt off) and this
    interpreter's ``python3`` kernel, which imports KATO from PYTHONPATH like the tests."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    shutil.copytree(ROOT / "notebooks", root)
    config = base / "config"
    (config / "labconfig").mkdir(parents=True)
    announcements = "@jupyterlab/apputils-extension:announcements"
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {announcements: True}})
    )
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
    }
    log = (base / "jupyter.log").open("wb")
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1"]
    command += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
    command += [f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    command += [f"--LabApp.workspaces_dir={base / 'workspaces'}"]
    command += ["--allow-root"] if os.geteuid() == 0 else []  # as make lab does
    process = subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_MS / 1000
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited: {(base / 'jupyter.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/status", params={"token": token}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer: {(base / 'jupyter.log').read_text()}")
            time.sleep(0.2)
        yield Lab(url, token, root)
    finally:
        stop(process)
        log.close()


#: JavaScript: true when every code cell of the open notebook has run (a number in its prompt).
ALL_RAN = """() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""

#: JavaScript: the ``naturalWidth`` of each image matched by the selector argument.
WIDTHS = "(selector) => [...document.querySelectorAll(selector)].map(i => i.naturalWidth)"


def _run_all_cells(page: Any, lab: Lab, name: str) -> None:
    """Open ``name`` in JupyterLab, wait for its kernel, run every cell and wait for them all."""
    page.goto(lab.notebook(name))
    # The status bar names the kernel once it is connected and idle.
    expect(page.locator(".jp-StatusBar-Widget", has_text="| Idle")).to_be_visible()
    page.locator(".jp-Notebook .jp-Cell").first.click()  # the notebook has focus: Run acts on it
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(ALL_RAN, timeout=WAIT_MS)
    expect(page.locator(".jp-OutputArea-output[data-mime-type*='error']")).to_have_count(0)


def _shot(watched: Watched, path: Path) -> None:
    watched.shot(path)
    assert path.stat().st_size > 0


def test_pressing_run_in_the_explorer_adds_a_point_to_the_failure_curve(
    watched: Watched, lab: Lab, tmp_path: Path
) -> None:
    source = lab.root / "02-concurrency-explorer.ipynb"
    text = source.read_text()
    assert '"autorun = True' in text  # a person opens it with autorun off: Run does the work
    source.write_text(text.replace('"autorun = True', '"autorun = False'))
    page = watched.page
    _run_all_cells(page, lab, source.name)

    explorer = page.locator(".kato-explorer-widget")
    expect(explorer).to_be_visible()
    count = explorer.locator(".kato-explorer-count")
    rows = explorer.locator(".kato-explorer-runs table tbody tr")
    curve = explorer.locator(".kato-explorer-curve")
    status = explorer.locator(".kato-explorer-status")
    expect(count).to_contain_text("no runs yet")
    expect(curve).to_be_hidden()  # nothing to draw yet, and no broken image
    _shot(watched, tmp_path / "explorer-before.png")

    # A run long enough to watch (shared-session plans at most its STM budget, 900-odd
    # operations: seconds here): the button waits, the status says what runs and how many
    # operations it plans, and the progress bar counts them all.
    operations = explorer.locator(".kato-explorer-operations input")
    operations.fill("20000")
    operations.press("Enter")
    run = explorer.locator(".kato-explorer-button")
    run.click()
    expect(run).to_be_disabled()
    running = r"running shared-session ×8 on engine/memory: \d+ operations planned"
    expect(status).to_contain_text(re.compile(running))
    progress = explorer.locator(".kato-explorer-progress .widget-label")
    expect(progress).to_have_text(re.compile(r"[1-9]\d* ops"))
    _shot(watched, tmp_path / "explorer-running.png")
    expect(rows).to_have_count(1)
    expect(status).to_contain_text("valid = True")
    ran = re.search(r"valid = True, (\d+) ops", status.inner_text())
    assert ran is not None and int(ran.group(1)) > 200, status.inner_text()
    expect(progress).to_have_text(f"{ran.group(1)} ops")  # the bar counted every operation
    expect(count).to_have_text("1 run(s) on the curve")
    expect(curve).to_be_visible()
    first = curve.get_attribute("src")

    readout = explorer.locator(".kato-explorer-concurrency .widget-readout")
    readout.fill("3")
    readout.press("Enter")
    expect(readout).to_have_text("3")
    run.click()
    expect(run).to_be_enabled()
    expect(rows).to_have_count(2)
    expect(count).to_have_text("2 run(s) on the curve")
    expect(status).to_contain_text(re.compile(r"×3 .*valid = True"))
    expect(rows.nth(1).locator("td").first).to_have_text("3")
    expect(curve).not_to_have_attribute("src", first or "")
    widths = page.evaluate(WIDTHS, ".kato-explorer-widget img")
    assert len(widths) == 2 and all(w > 0 for w in widths), widths  # live plot and curve
    _shot(watched, tmp_path / "explorer-after-two-runs.png")
    explorer.screenshot(path=tmp_path / "explorer-widget.png")
    assert watched.errors == []


def test_the_quick_start_shows_its_tables(watched: Watched, lab: Lab, tmp_path: Path) -> None:
    page = watched.page
    _run_all_cells(page, lab, "01-quickstart.ipynb")
    tables = page.locator(".jp-RenderedHTMLCommon table.dataframe")
    expect(tables).to_have_count(3)  # learned patterns, short-term memory, predictions
    for table in tables.all():
        expect(table.locator("tbody tr").first).to_be_visible()
    expect(tables.nth(2).locator("thead")).to_contain_text("similarity")
    _shot(watched, tmp_path / "quickstart.png")
    assert watched.errors == []


def test_a_sweep_report_opened_from_a_file_loads_every_image(
    watched: Watched, tmp_path: Path
) -> None:
    specs = [NOOP.with_(target="engine", store="memory", concurrency=c, operations=60)
             for c in (1, 4)]  # fmt: skip
    folder = sweep(specs, tmp_path, progress=False)
    page = watched.page
    page.goto((folder / "report.html").as_uri())
    page.wait_for_load_state("load")
    images = page.locator("img")
    # anomalies, anomalous trials and errors vs concurrency, latency, the latency CDF
    expect(images).to_have_count(5)
    widths = page.evaluate(WIDTHS, "img")
    assert all(w > 0 for w in widths), widths
    expect(page.locator("h2:has-text('Cells') + table tbody tr")).to_have_count(2)  # per cell
    expect(page.get_by_text("production: 0 anomalies in 2 runs")).to_be_visible()  # headline
    expect(page.locator("figcaption").first).to_contain_text("vs concurrency")
    _shot(watched, tmp_path / "report.png")
    assert watched.errors == []
