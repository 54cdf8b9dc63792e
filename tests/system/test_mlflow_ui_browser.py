"""MLflow's own UI, in a real browser, over a finished pipeline run: the run comparison overlays every child run;
the Models tab lists the MLflow 3 logged models, the runs table's Dataset column names the splits, and the
registry shows the model's and the version's descriptions (the model card).

The test runs ``seqflow run`` on the tiny pipeline (two architectures) into a SQLite store, starts ``mlflow
server`` on 127.0.0.1 over it, and opens the run-comparison page of the child runs in headless Chromium through
Playwright. Then it opens the ``val_loss`` link the run printed under its table (MLflow's chart of ``val_loss``
for every child run, the page the comparison's ``val_loss`` row links to), with no click, and checks that the
chart's legend names every child run. Screenshots of both pages go to the test's folder and, when
``SEQFLOW_SCREENSHOT_DIR`` is set, there too.

It needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` package (a dev dependency);
Playwright's own browser download is never used. Without them the test is skipped; ``.ci/run`` installs
chromium and sets ``SEQFLOW_REQUIRE_CHROMIUM=1``, which turns that skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Iterator

import pytest

from seqflow.core.run_links import MLFLOW_UI_DEFAULT
from seqflow.core.tracking import ROLE_TAG
from tests.flows.conftest import tracking_settings_for
from tests.system.cli_runs import RUN_TIMEOUT_S, cli_environment, cli_run_argv, printed_link
from tests.system.mlflow_server import free_port, running_mlflow_server

pytestmark = pytest.mark.slow

REQUIRE_ENV = "SEQFLOW_REQUIRE_CHROMIUM"
SCREENSHOT_DIR_ENV = "SEQFLOW_SCREENSHOT_DIR"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# The UI loads its bundle and then the runs through the REST API; on a busy 2-core CI machine that takes a while.
PAGE_TIMEOUT_MS = 120_000


def _skip_or_fail(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set, so this is not skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium and the playwright package, or a skip; session-scoped so it is decided before any training."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _skip_or_fail("the playwright package is not installed (it is in the dev dependency group: `uv sync`)")
    found = next((path for path in CHROMIUM_CANDIDATES if Path(path).is_file()), None) or shutil.which("chromium")
    if found is None:
        _skip_or_fail(
            f"no Chromium at {' or '.join(CHROMIUM_CANDIDATES)} or on PATH; install Debian's with "
            "`apt-get install chromium` (`bash .ci/run` does this)"
        )
    return found


def compare_runs_url(server_url: str, run_ids: list[str], experiment_ids: list[str]) -> str:
    """MLflow's run-comparison page (the UI's ``getCompareRunPageRoute``: JSON lists in the hash query)."""
    query = f"runs={json.dumps(run_ids)}&experiments={json.dumps(experiment_ids)}"
    return f"{server_url}/#/compare-runs?{urllib.parse.quote(query, safe='=&')}"


def save_screenshot(page, name: str, test_dir: Path) -> Path:  # noqa: ANN001 - a playwright Page
    """Full-page PNG into the test's folder, copied to ``SEQFLOW_SCREENSHOT_DIR`` when that is set."""
    path = test_dir / name
    page.screenshot(path=str(path), full_page=True)
    extra_dir = os.environ.get(SCREENSHOT_DIR_ENV)
    if extra_dir:
        Path(extra_dir).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra_dir) / name)
    return path


@pytest.fixture
def printed_run(chromium_path, prefect_api, short_reviews, tmp_path) -> str:
    """What ``seqflow run`` printed for the tiny pipeline (two architectures), run as a user runs it."""
    reviews_csv = tmp_path / "short_reviews.csv"
    short_reviews.to_csv(reviews_csv, index=False)
    done = subprocess.run(
        cli_run_argv(tmp_path, reviews_csv), cwd=tmp_path, env=cli_environment(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=RUN_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout
    return done.stdout


@pytest.fixture
def ui_server(printed_run, tmp_path) -> Iterator[str]:
    """``mlflow server`` over the printed run's SQLite store."""
    with running_mlflow_server(["--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"], free_port(), tmp_path / "mlflow-server.log") as url:
        yield url


def test_printed_val_loss_link_overlays_every_child_run(chromium_path, printed_run, ui_server, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("seqflow-test")
    children = [
        run for run in client.search_runs([experiment.experiment_id]) if run.data.tags.get(ROLE_TAG) == "architecture"
    ]
    assert sorted(run.info.run_name for run in children) == ["embedding_pool", "lstm"]
    # The link as printed, for `mlflow ui` on its default address; this test's server listens elsewhere.
    link = printed_link(printed_run, "val_loss")
    assert link.startswith(f"{MLFLOW_UI_DEFAULT}/#/metric?")
    screenshot = check_val_loss_chart(
        chromium_path, ui_server, experiment.experiment_id, {run.info.run_id: run.info.run_name for run in children},
        tmp_path, link.replace(MLFLOW_UI_DEFAULT, ui_server, 1),
    )
    assert screenshot.stat().st_size > 10_000, "the chart screenshot is suspiciously small"
    model_name = tracking_settings_for(tmp_path).registered_model_name  # the store the printed run wrote
    champion = client.get_model_version_by_alias(model_name, "champion")
    check_mlflow3_pages(
        chromium_path, ui_server, experiment.experiment_id, model_name,
        str(champion.version), tmp_path,
    )


def check_mlflow3_pages(
    chromium_path: str, server_url: str, experiment_id: str, model_name: str, version: str, screenshot_dir: Path
) -> None:
    """Issue 21: the experiment's Models tab lists the logged models, the runs table's Dataset column names the
    splits, and the registry shows the registered model's description (champion history) and the version's card."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(f"{server_url}/#/experiments/{experiment_id}/models")
            # One logged model per child run, each linked to its source run.
            for name in ("embedding_pool", "lstm"):
                expect(page.get_by_text(name, exact=True).first).to_be_visible()
            close_assistant_panel(page)
            save_screenshot(page, "mlflow_models_tab.png", screenshot_dir)

            page.goto(f"{server_url}/#/experiments/{experiment_id}/runs")
            expect(page.get_by_text("reviews-train", exact=False).first).to_be_visible()
            close_assistant_panel(page)
            save_screenshot(page, "mlflow_runs_datasets.png", screenshot_dir)

            page.goto(f"{server_url}/#/models/{urllib.parse.quote(model_name)}")
            expect(page.get_by_text("Binary sentiment of English movie reviews", exact=False).first).to_be_visible()
            expect(page.get_by_text("Champion history", exact=False).first).to_be_visible()
            close_assistant_panel(page)
            save_screenshot(page, "mlflow_registered_model.png", screenshot_dir)

            page.goto(f"{server_url}/#/models/{urllib.parse.quote(model_name)}/versions/{version}")
            expect(page.get_by_text("Promotion decision", exact=True).first).to_be_visible()
            expect(page.get_by_text("review sentiment classifier", exact=False).first).to_be_visible()
            close_assistant_panel(page)
            save_screenshot(page, "mlflow_model_version_card.png", screenshot_dir)
        finally:
            browser.close()


def check_val_loss_chart(
    chromium_path: str, server_url: str, experiment_id: str, run_names: dict[str, str], screenshot_dir: Path,
    chart_link: str,
) -> Path:
    """Open the comparison of ``run_names`` (run id -> name) in MLflow's UI, then ``chart_link`` (the val_loss
    link a run prints), with no click in between; assert that every run is drawn there, and return the chart's
    screenshot."""
    from playwright.sync_api import expect, sync_playwright

    # The UI fetches its bundle, then the runs and metric histories; on a busy 2-core machine that takes a while.
    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    names = sorted(run_names.values())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(compare_runs_url(server_url, list(run_names), [experiment_id]))
            # The comparison names every run and lists the overfitting figures side by side.
            for name in names:
                expect(page.get_by_role("cell", name=name, exact=True).first).to_be_visible()
            expect(page.get_by_role("link", name="epochs_past_best", exact=True)).to_be_visible()
            close_assistant_panel(page)
            save_screenshot(page, "mlflow_compare_runs.png", screenshot_dir)

            # MLflow's chart of val_loss for the compared runs (where the comparison's val_loss row links to, and
            # what the run printed): one curve per run, per epoch, each named "<run name> (val_loss)" in the legend.
            page.goto(chart_link)
            chart = page.get_by_test_id("experiment-view-compare-runs-card").filter(has_text="val_loss")
            for name in names:
                expect(chart.get_by_text(f"{name} (val_loss)", exact=True)).to_be_visible()
            close_assistant_panel(page)
            return save_screenshot(page, "mlflow_val_loss_chart.png", screenshot_dir)
        finally:
            browser.close()


def close_assistant_panel(page) -> None:  # noqa: ANN001 - a playwright Page
    """MLflow 3.17 opens an "MLflow Assistant" side panel that covers part of the page; close it if it is open."""
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count() and close.first.is_visible():
        close.first.click()
