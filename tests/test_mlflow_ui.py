"""The MLflow UI for real: `mlflow server` over a finished sweep, opened in headless Chromium.

The browser comes from scripts/install_browser.sh (apt-get chromium chromium-driver), which the
`chrome` fixture runs; the test is skipped only when no browser can be installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from seglab.tracking.views import run_url
from tests.conftest import ROOT
from tests.servers import free_port, wait_until_answering

pytestmark = pytest.mark.slow
selenium = pytest.importorskip("selenium", reason="selenium is in the dev extra")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WAIT_S = 90  # page loads on a loaded 2-core machine


def _browser_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="session")
def chrome() -> Iterator[webdriver.Chrome]:
    if _browser_paths() is None:
        proc = subprocess.run(
            ["bash", str(ROOT / "scripts" / "install_browser.sh")],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if _browser_paths() is None:
            pytest.skip(f"no browser could be installed: {proc.stderr.strip()[-500:]}")
    browser, driver_path = _browser_paths()  # type: ignore[misc]
    options = Options()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def mlflow_ui(sweep_store: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1:<free port> over the sweep's store; yields its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("mlflow_ui") / "server.log"
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", sweep_store["uri"],
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log.open("w") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{url}/health", server, log, "mlflow server")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _body(driver: webdriver.Chrome) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def test_ui_lists_the_sweep_and_draws_a_val_miou_chart(
    chrome: webdriver.Chrome, mlflow_ui: str, sweep_store: dict, tmp_path: Path
) -> None:
    client = MlflowClient(sweep_store["uri"])
    experiment = client.get_experiment_by_name("synthetic")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("seglab.sweep") == "true")
    children = [r for r in runs if r is not parent]
    wait = WebDriverWait(chrome, WAIT_S)

    # The experiment's runs: the sweep's parent row, and its children once expanded.
    chrome.get(f"{mlflow_ui}/#/experiments/{experiment.experiment_id}/runs")
    wait.until(lambda d: parent.info.run_name in _body(d))
    assert f"{len(runs)} matching runs" in _body(chrome)
    expanders = chrome.find_elements(
        By.CSS_SELECTOR, "button[data-component-id*='runnamecellrenderer']"
    )
    assert expanders, "the sweep's row has no expander for its child runs"
    expanders[0].click()
    wait.until(lambda d: all(c.info.run_name in _body(d) for c in children))
    listing = tmp_path / "mlflow_ui_runs.png"
    chrome.save_screenshot(str(listing))

    # A run's val/mIoU chart renders (plotly draws the curve as an SVG path).
    best = client.get_run(parent.data.tags["seglab.best_run_id"])
    chrome.get(_run_page(mlflow_ui, experiment.experiment_id, best.info.run_id))
    _val_miou_chart(wait, best.info.run_name)
    chart = tmp_path / "mlflow_ui_val_miou.png"
    chrome.save_screenshot(str(chart))
    assert chart.stat().st_size > 10_000
    print(f"screenshots: {listing} {chart}")


# --- The model-training view through `make ui` (issue 16, item 6) ----------------------------


@pytest.fixture(scope="module")
def recorded_store(tmp_path_factory: pytest.TempPathFactory, tiny_synthetic_root: Path) -> dict:
    """A 2-epoch run with overlays every epoch in its own embedded store (as `make ui` reads)."""
    from tests.conftest import new_store, run_entry_point, tiny_run

    tmp = tmp_path_factory.mktemp("ui_store")
    store = tmp / "mlruns"
    uri = new_store(store)
    args = [*tiny_run(tiny_synthetic_root, epochs=2, overlays=2, log_model=True)]
    args.append("callbacks.mlflow_artifacts.every_n_epochs=1")
    proc = run_entry_point("train.py", args, tmp, tracking_uri=uri)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("synthetic").experiment_id
    (run,) = client.search_runs([experiment_id])
    (model,) = client.search_logged_models([experiment_id])
    return {"store": store, "uri": uri, "run": run, "model": model}


@pytest.fixture(scope="module")
def make_ui(recorded_store: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """`make ui` (its command, as make prints it) over the recorded store; yields the link it
    printed for the experiment."""
    import os
    import shlex
    import signal

    port = free_port()
    printed = subprocess.run(
        ["make", "-n", "ui", f"BIN={Path(sys.executable).parent}",
         f"MLFLOW_STORE={recorded_store['store']}", f"MLFLOW_PORT={port}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    command = shlex.split(next(line for line in printed.splitlines() if "seglab.cli.ui" in line))
    log = tmp_path_factory.mktemp("make_ui") / "ui.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{url}/health", server, log, "make ui")
        links = [line for line in log.read_text().splitlines() if line.startswith("synthetic: ")]
        yield {"url": url, "link": links[0].split(": ", 1)[1] if links else None}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_make_ui_link_opens_the_model_training_view(
    chrome: webdriver.Chrome, make_ui: dict, recorded_store: dict, tmp_path: Path
) -> None:
    run = recorded_store["run"]
    experiment_id = run.info.experiment_id
    link = make_ui["link"]
    assert link == (
        f"{make_ui['url']}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    )
    wait = WebDriverWait(chrome, WAIT_S)

    # The runs table (not the GenAI overview), with the run and its Dataset column.
    chrome.get(link)
    wait.until(lambda d: run.info.run_name in _body(d))
    body = _body(chrome)
    assert "Dataset" in body and "Detect issues in your traces" not in body
    wait.until(lambda d: "synthetic/train" in _body(d) or "synthetic/val" in _body(d))
    chrome.save_screenshot(str(tmp_path / "runs_table.png"))

    # The run's charts: val/mIoU drawn, and the overlays' image chart with a step slider that
    # reaches the last epoch (step 1).
    chrome.get(_run_page(make_ui["url"], experiment_id, run.info.run_id))
    search = _val_miou_chart(wait, run.info.run_name)
    search.send_keys(Keys.CONTROL, "a")  # the UI keeps the search across page loads: replace it
    search.send_keys("val_overlays")
    assert search.get_attribute("value") == "val_overlays"
    # The slider of the chart titled val_overlays (the closest box holding title and slider).
    in_chart = "//*[text()='val_overlays']/ancestor::*[.//*[@role='slider']][1]//*[@role='slider']"
    sliders = wait.until(lambda d: d.find_elements(By.XPATH, in_chart))
    steps = [(s.get_attribute("aria-valuemin"), s.get_attribute("aria-valuemax")) for s in sliders]
    assert ("0", "1") in steps, steps
    chrome.save_screenshot(str(tmp_path / "run_charts.png"))
    print(f"screenshots: {tmp_path / 'runs_table.png'} {tmp_path / 'run_charts.png'}")

    # The run's logged model, listed on its overview and linked to the model's page.
    model = recorded_store["model"]
    chrome.get(run_url(make_ui["url"], experiment_id, run.info.run_id))
    links = wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f"a[href*='models/{model.model_id}']")
    )
    assert any(model.name in link.text for link in links), [link.text for link in links]
    chrome.save_screenshot(str(tmp_path / "run_overview.png"))


def _val_miou_chart(wait: WebDriverWait, run_name: str) -> Any:
    """On a run's chart page: search for val/mIoU and check its curve is drawn (plotly draws
    it as an SVG path). Returns the search box."""
    search = wait.until(
        lambda d: d.find_element(By.CSS_SELECTOR, "input[placeholder='Search metric charts']")
    )
    search.send_keys("val/mIoU")
    wait.until(lambda d: f"{run_name} (val/mIoU)" in _body(d))
    traces = wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer path.js-line")
    )
    assert traces and all(t.get_attribute("d") for t in traces)
    return search


def _run_page(base: str, experiment_id: str, run_id: str) -> str:
    return run_url(base, experiment_id, run_id, "model-metrics")
