"""The course as a student meets it: JupyterLab in a real browser, notebook 01 run end to end.

nbval proves the kernel side of the notebooks; this test proves the browser side. It serves a
copy of `notebooks/` from a throw-away JupyterLab, opens `01_task_definition.ipynb` in headless
Chromium, runs every cell from the Run menu, and checks that no cell failed, that the episode
explorer widget rendered, and that moving its "seed" slider draws a different episode.
Screenshots before and after the slider move are saved in `test-artifacts/browser/`.

It is skipped, saying why, only where Chromium cannot run at all (`tools/ensure_chromium.sh`,
run by `make test`, installs Debian's `chromium` when it is missing).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from browser_support import ChromiumUnavailable, JupyterLabServer, launch_chromium
from conftest import omniglot_dir

pytestmark = pytest.mark.browser

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
NOTEBOOK = "01_task_definition.ipynb"
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts" / "browser"
SLIDER_DESCRIPTIONS = ["N (ways)", "K (shots)", "Q (queries)", "seed"]

# Guards against a hang, not speed targets: a notebook may take three minutes on a 2-core CPU,
# longer when the machine is shared; JupyterLab and the browser add their own overhead.
RUN_ALL_TIMEOUT_S = 360.0
PAGE_TIMEOUT_MS = 60_000


def _wait_until(condition, timeout_s: float, what: str, interval_s: float = 0.5):
    """Poll `condition()` until it returns something truthy; that value, or a TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator:
    """A Playwright page in headless Chromium; the test is skipped when Chromium cannot run."""
    with sync_playwright() as playwright:
        try:
            context = launch_chromium(playwright, tmp_path / "chromium-profile")
        except ChromiumUnavailable as reason:
            message = f"browser test skipped: {reason}"
            print(message, file=sys.stderr)
            warnings.warn(message, stacklevel=1)
            pytest.skip(str(reason))
        try:
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture
def served_notebooks(tmp_path: Path) -> Path:
    """A copy of notebooks/ (checks/ included): running cells in the browser writes outputs into
    the served file on save, and the repository's notebooks must stay as they are."""
    if not (NOTEBOOKS_DIR / NOTEBOOK).exists():
        pytest.fail(f"{NOTEBOOKS_DIR / NOTEBOOK} does not exist")
    copy = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS_DIR, copy,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return copy


@pytest.fixture
def jupyter_lab(served_notebooks: Path, tmp_path: Path) -> Iterator[JupyterLabServer]:
    """JupyterLab serving the copy; shut down (kernels too) when the test ends, however it ends.

    The copy lives outside the repository, so the notebooks are told where the repository's
    Omniglot zips are (they otherwise look for them relative to the repository)."""
    environment = {"FEWSHOT_OMNIGLOT_DIR": str(omniglot_dir())}
    with JupyterLabServer(served_notebooks, tmp_path / "jupyter-state",
                          ARTIFACTS_DIR / "jupyterlab.log", environment) as server:
        yield server


def _code_cell_prompts(page) -> list[str]:
    return page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt").all_inner_texts()


def _run_all_cells(page, server: JupyterLabServer) -> None:
    """Run > Run All Cells, then wait until no cell is queued or running and the kernel is idle."""
    # Selecting a cell by its prompt focuses the notebook without editing it or following a link.
    page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").first.click()
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item:not(.lm-mod-disabled)",
                 has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$"))
                 ).click()

    def finished() -> bool:
        prompts = _code_cell_prompts(page)
        ran = any(re.fullmatch(r"\[\d+\]:", prompt.strip()) for prompt in prompts)
        pending = any("*" in prompt for prompt in prompts)
        return ran and not pending and server.kernel_state(NOTEBOOK) == "idle"

    _wait_until(finished, RUN_ALL_TIMEOUT_S, "Run All Cells to finish")


def _save_notebook(page, saved_path: Path) -> dict:
    """File > Save Notebook; the saved notebook once it is on disk."""
    before = saved_path.stat().st_mtime_ns
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^File$")).click()
    page.locator(".lm-Menu-item:not(.lm-mod-disabled)",
                 has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Save Notebook$"))
                 ).click()
    _wait_until(lambda: saved_path.stat().st_mtime_ns != before, 30, "the notebook to be saved")
    return _wait_until(lambda: _read_json(saved_path), 10, "the saved notebook to be readable")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, OSError):
        return None


def _cell_failures(notebook: dict) -> list[str]:
    """One line per code cell that raised or did not run, from the saved notebook."""
    failures = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code" or not "".join(cell["source"]).strip():
            continue
        first_line = "".join(cell["source"]).strip().splitlines()[0]
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                failures.append(f"cell {index} ({first_line!r}) raised "
                                f"{output['ename']}: {output['evalue']}")
        if cell.get("execution_count") is None:
            failures.append(f"cell {index} ({first_line!r}) did not run")
    return failures


def _widget_messages(page) -> list[str]:
    """What output areas say about widgets, e.g. "Error displaying widget: model not found"."""
    texts = page.locator(".jp-OutputArea-output").all_inner_texts()
    return [text.strip()[:200] for text in texts if "widget" in text.lower()]


def _slowest_cells(notebook: dict, count: int = 3) -> str:
    """The `count` longest-running code cells of a saved notebook, from JupyterLab's timings."""
    durations = []
    for index, cell in enumerate(notebook["cells"]):
        timing = cell.get("metadata", {}).get("execution", {})
        started, finished = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if started and finished:
            seconds = (datetime.fromisoformat(finished.replace("Z", "+00:00"))
                       - datetime.fromisoformat(started.replace("Z", "+00:00"))).total_seconds()
            durations.append((seconds, index))
    slowest = sorted(durations, reverse=True)[:count]
    return ", ".join(f"cell {index} {seconds:.1f} s" for seconds, index in slowest)


def _slider(explorer, description: str):
    """The IntSlider of the explorer whose description label reads `description`."""
    exact_text = re.compile(f"^{re.escape(description)}$")
    label = explorer.page.locator(".widget-label", has_text=exact_text)
    return explorer.locator(".widget-slider", has=label)


# The bytes the page displays for an <img>, whether its src is a data: URL (an Output's PNG) or
# a blob: URL (an ipywidgets Image); None while the image is missing or not yet loaded.
_IMAGE_DIGEST_JS = """async (image) => {
    if (!image.src || !image.complete || image.naturalWidth === 0) return null;
    const bytes = await (await fetch(image.src)).arrayBuffer();
    const digest = await crypto.subtle.digest("SHA-256", bytes);
    return Array.from(new Uint8Array(digest), b => b.toString(16).padStart(2, "0")).join("");
}"""


def _episode_image_digest(explorer) -> str | None:
    """SHA-256 of the episode image the explorer shows (None while there is none)."""
    images = explorer.locator("img")
    if images.count() != 1:
        return None
    return images.evaluate(_IMAGE_DIGEST_JS)


def test_notebook_01_runs_in_jupyterlab_and_its_explorer_responds(browser_page, jupyter_lab,
                                                                 served_notebooks):
    page = browser_page
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    timings = {"JupyterLab started": jupyter_lab.startup_s}
    mark = time.monotonic()
    try:
        page.goto(jupyter_lab.url(f"/lab/tree/{NOTEBOOK}"))
        page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for()
        _wait_until(lambda: jupyter_lab.kernel_state(NOTEBOOK) == "idle", 90,
                    "the notebook's kernel to start")
        timings["notebook open, kernel idle"] = time.monotonic() - mark

        mark = time.monotonic()
        _run_all_cells(page, jupyter_lab)
        timings["Run All Cells"] = time.monotonic() - mark
        saved = _save_notebook(page, served_notebooks / NOTEBOOK)
        failures = _cell_failures(saved)
        assert not failures, "cells failed in JupyterLab:\n" + "\n".join(failures)

        explorer = page.locator(".episode-explorer")
        try:
            expect(explorer).to_have_count(1, timeout=30_000)
        except AssertionError as error:
            raise AssertionError("the episode explorer widget did not render; widget outputs: "
                                 f"{_widget_messages(page)}") from error
        for description in SLIDER_DESCRIPTIONS:
            expect(_slider(explorer, description), "the episode explorer has no slider "
                   f"described {description!r}").to_have_count(1)
        image_before = _wait_until(lambda: _episode_image_digest(explorer), 30,
                                   "the explorer to show one episode image")

        explorer.scroll_into_view_if_needed()
        page.screenshot(path=ARTIFACTS_DIR / "01_before_slider.png")
        explorer.screenshot(path=ARTIFACTS_DIR / "01_before_slider_explorer.png")

        seed = _slider(explorer, "seed")
        readout = seed.locator(".widget-readout")
        seed_before = int(readout.inner_text())
        mark = time.monotonic()
        seed.locator(".noUi-handle").focus()
        page.keyboard.press("ArrowRight")
        _wait_until(lambda: readout.inner_text().strip() == str(seed_before + 1), 10,
                    f"the seed slider to move from {seed_before} to {seed_before + 1}")
        _wait_until(lambda: _episode_image_digest(explorer) not in (None, image_before), 30,
                    "the episode image to change after the seed slider moved")
        _wait_until(lambda: jupyter_lab.kernel_state(NOTEBOOK) == "idle", 30,
                    "the kernel to finish redrawing")
        timings["slider move to new episode"] = time.monotonic() - mark

        page.screenshot(path=ARTIFACTS_DIR / "02_after_slider.png")
        explorer.screenshot(path=ARTIFACTS_DIR / "02_after_slider_explorer.png")
        assert "Traceback" not in explorer.inner_text(), "the explorer shows an error"
    except BaseException:
        page.screenshot(path=ARTIFACTS_DIR / "failure.png")
        raise
    steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items())
    summary = f"browser test: {steps}; slowest cells: {_slowest_cells(saved)}"
    (ARTIFACTS_DIR / "timings.txt").write_text(summary + "\n", encoding="utf-8")
    print(f"\n{summary}; screenshots in {ARTIFACTS_DIR.relative_to(REPO_ROOT)}/")
