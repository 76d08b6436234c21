"""The reports inside Airflow's UI: a real api-server with the plugin, driven by headless Chromium.

The report DAG's code writes the pages into a destination; Airflow's api-server (PostgreSQL metadata
database, the simple auth manager) serves them through the plugin at ``/uci-reports``, on its own port,
only to a logged-in user; the menu's "Conversation reports" shows them inside the UI.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from airflow_provider_uci.exhaust.load import load_exhaust
from tests.e2e.system import AIRFLOW, AirflowSystem
from tests.support.services import postgres_database, unavailable

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sunbird"
MENTOR_BOT = "1ffc932f-1220-458d-9d9a-a5a377a42139"


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowSystem, Path]]:
    """An api-server whose report destination holds the fleet's page and the mentor bot's."""
    from airflow_provider_uci.dags.uci_exhaust_report import refresh
    from airflow_provider_uci.transfers.exhaust import Destination

    if not AIRFLOW.exists():
        unavailable(f"the airflow command is not installed beside {AIRFLOW.parent}")
    root = tmp_path_factory.mktemp("ui")
    url = f"sqlite:///{root / 'warehouse.db'}"
    load_exhaust(
        response_csv=FIXTURES / "response-exhaust-2022-06-24-mentor-feedback.csv",
        private=None,
        warehouse_url=url,
    )
    destination = root / "files"
    refresh(url, Destination.parse(str(destination)), [MENTOR_BOT])
    with postgres_database() as metadata:
        system = AirflowSystem.configure(root / "airflow", metadata)
        system.env["AIRFLOW_VAR_UCI_EXHAUST_DESTINATION"] = str(destination)
        system.migrate()
        system.start("api-server")
        try:
            system.wait_healthy(180, components=("metadatabase",))
            yield system, destination
        finally:
            system.stop_all()


def token(system: AirflowSystem) -> str:
    answer = requests.post(
        f"{system.base_url}/auth/token", json={"username": "admin", "password": system.password}, timeout=30
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


def test_the_pages_need_airflow_s_login(airflow) -> None:
    system, _ = airflow
    for path in ("/uci-reports/", "/uci-reports/fleet", f"/uci-reports/bots/{MENTOR_BOT}"):
        answer = requests.get(system.base_url + path, timeout=30)
        assert answer.status_code == 401 and "Mentor" not in answer.text, path
        signed = requests.get(
            system.base_url + path, headers={"Authorization": f"Bearer {token(system)}"}, timeout=30
        )
        assert signed.status_code == 200 and "MPC-UP-Mentor Feedback" in signed.text, path
        assert (
            signed.headers["cache-control"] == "no-store"
            and "frame-ancestors 'self'" in signed.headers["content-security-policy"]
        )
    bearer = {"Authorization": f"Bearer {token(system)}"}
    for bad in ("..%2F..%2Fetc", "not-a-uuid", "%2E%2E"):
        assert (
            requests.get(f"{system.base_url}/uci-reports/bots/{bad}", headers=bearer, timeout=30).status_code
            == 404
        )
    plugins = requests.get(f"{system.base_url}/api/v2/plugins", headers=bearer, timeout=30).json()["plugins"]
    (mine,) = [plugin for plugin in plugins if plugin["name"] == "uci_exhaust_reports"]
    assert mine["external_views"][0]["name"] == "Conversation reports"


def test_the_menu_entry_shows_the_reports_inside_airflow_in_chromium(airflow, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        unavailable("no chromium and chromedriver on this machine")
    system, _ = airflow
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    wait = WebDriverWait(driver, 60)
    try:
        driver.get(f"{system.base_url}/uci-reports/")
        assert "MPC-UP-Mentor Feedback" not in driver.page_source, "no page before logging in"
        driver.get(f"{system.base_url}/")  # Airflow's own session: its JWT in its cookie
        driver.add_cookie({"name": "_token", "value": token(system), "path": "/"})
        driver.get(f"{system.base_url}/")
        browse = wait.until(
            expected_conditions.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Browse']"))
        )
        browse.click()
        wait.until(
            expected_conditions.element_to_be_clickable(
                (
                    By.XPATH,
                    "//*[@role='menuitem'][normalize-space()='Conversation reports'] | "
                    "//a[normalize-space()='Conversation reports']",
                )
            )
        ).click()
        wait.until(lambda d: "/plugin/uci-reports" in d.current_url)
        frame = wait.until(expected_conditions.presence_of_element_located((By.TAG_NAME, "iframe")))
        driver.switch_to.frame(frame)
        wait.until(
            expected_conditions.element_to_be_clickable((By.LINK_TEXT, "MPC-UP-Mentor Feedback"))
        ).click()
        heading = wait.until(expected_conditions.presence_of_element_located((By.TAG_NAME, "h1")))
        assert heading.text == "MPC-UP-Mentor Feedback: conversation report"
        assert driver.find_elements(By.CSS_SELECTOR, "figure svg"), "the bot's charts are drawn"
        driver.switch_to.default_content()
        time.sleep(1)
        driver.save_screenshot(str(tmp_path / "airflow-reports.png"))
        assert (tmp_path / "airflow-reports.png").stat().st_size > 10_000
    finally:
        driver.quit()
