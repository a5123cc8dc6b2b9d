"""The web console (/console) in a real browser: Debian's headless Chromium driven by Selenium
through the system chromedriver (Selenium Manager never runs, nothing is downloaded)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.gateway_process import REPO, GatewayProcess

CHROMIUM = os.environ.get("OCR_GATEWAY_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("OCR_GATEWAY_CHROMEDRIVER", "/usr/bin/chromedriver")
SCAN = "f_pdfs/ocrmypdf/ccitt.pdf"  # a one-page scanned PDF
SCREEN = (1366, 768)  # a laptop screen
# Set to a path (docs/console.png) to write the README's screenshot there too.
SCREENSHOT_ENV = "OCR_GATEWAY_CONSOLE_SCREENSHOT"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert Path(binary).is_file(), f"{binary} is missing: scripts/setup test installs it"
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a driver or browser
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI containers run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={SCREEN[0]},{SCREEN[1]}",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads  # type: ignore[attr-defined]
    yield driver
    driver.quit()


def wait_until(driver: webdriver.Chrome, what: Any, timeout_s: float = 30) -> Any:
    return WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(lambda d: what(d))


def rect(driver: webdriver.Chrome, element: Any) -> dict[str, float]:
    found: dict[str, float] = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return {x: r.left, y: r.top, width: r.width, height: r.height};",
        element,
    )
    return found


def expected_boxes(page: dict[str, Any]) -> dict[str, list[dict[str, float]]]:
    blocks = page["content_blocks"]
    lines = [line for block in blocks for line in block["lines"]]
    return {
        "blocks": [b["geometry"] for b in blocks],
        "lines": [line["geometry"] for line in lines],
        "words": [w["geometry"] for line in lines for w in line.get("words", [])],
    }


def test_a_new_user_signs_in_drops_a_pdf_and_sees_its_boxes(
    browser: webdriver.Chrome, gateway: GatewayProcess, api_key: str, corpus: Path, tmp_path: Path
) -> None:
    """Sign in with a key, pick a scanned PDF, see its quote, submit, watch it finish; every
    block, line and word of the JSON is drawn where its geometry says on the preview; hovering
    and the arrow keys show a box's text; markdown downloads; the page fits a laptop screen;
    the browser logs no error (a missing favicon would be one)."""
    driver = browser
    driver.get(f"{gateway.url}/console")
    driver.find_element(By.ID, "api-key").send_keys(api_key)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    wait_until(driver, lambda d: d.find_element(By.ID, "app-view").is_displayed())
    assert api_key not in driver.current_url
    assert driver.execute_script("return sessionStorage.length") == 1
    wait_until(driver, lambda d: "credits available" in d.find_element(By.ID, "balance").text)

    driver.find_element(By.ID, "file-input").send_keys(str(corpus / SCAN))
    wait_until(
        driver, lambda d: "Quote: 1 credits for 1 page" in d.find_element(By.ID, "quote").text
    )
    submit = driver.find_element(By.ID, "submit")
    assert submit.is_enabled()
    submit.click()
    status = driver.find_element(By.ID, "job-status")
    wait_until(driver, lambda d: status.text.startswith("completed"), timeout_s=180)

    with httpx.Client(base_url=gateway.url, headers={"X-API-Key": api_key}, timeout=30) as api:
        job_id = api.get("/v1/jobs", params={"limit": 1}).json()["jobs"][0]["id"]
        page = api.get(f"/v1/jobs/{job_id}").json()["results"][0]
    expected = expected_boxes(page)
    assert expected["words"], "the scan has words"
    image = driver.find_element(By.ID, "page-image")
    wait_until(driver, lambda d: d.execute_script("return arguments[0].naturalWidth > 0", image))
    size = driver.execute_script(
        "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image
    )
    dims = page["document_metadata"]["page_dimensions"]
    assert size == [dims["width"], dims["height"]]
    for level, geometries in expected.items():
        driver.find_element(By.CSS_SELECTOR, f"input[name=level][value={level}]").click()
        wait_until(
            driver,
            lambda d, lv=level: (
                d.find_element(By.ID, "overlay").get_attribute("data-count")
                == str(len(expected[lv]))
                and d.find_elements(By.CSS_SELECTOR, f".box-{lv}")
            ),
        )
        drawn = driver.find_elements(By.CSS_SELECTOR, f"#overlay .box-{level}")
        assert len(drawn) == len(geometries), level
        frame = rect(driver, image)
        for index in sorted({0, len(drawn) // 2, len(drawn) - 1}):
            box, g = rect(driver, drawn[index]), geometries[index]
            assert box["x"] == pytest.approx(frame["x"] + g["x"] * frame["width"], abs=1.5)
            assert box["y"] == pytest.approx(frame["y"] + g["y"] * frame["height"], abs=1.5)
            assert box["width"] == pytest.approx(g["width"] * frame["width"], abs=1.5)
            assert box["height"] == pytest.approx(g["height"] * frame["height"], abs=1.5)

    driver.find_element(By.CSS_SELECTOR, "input[name=level][value=lines]").click()
    lines = [line for block in page["content_blocks"] for line in block["lines"]]
    overlay = driver.find_element(By.ID, "overlay")
    heading = driver.find_element(By.CSS_SELECTOR, "header h1")
    webdriver.ActionChains(driver).move_to_element(heading).perform()  # the pointer off the page
    driver.execute_script("arguments[0].focus()", overlay)  # as Tab would
    current = driver.find_elements(By.CSS_SELECTOR, "#overlay .box.selected")
    after = (int(current[0].get_attribute("data-index") or 0) + 1) % len(lines) if current else 0
    webdriver.ActionChains(driver).send_keys(Keys.ARROW_RIGHT).perform()
    assert lines[after]["text"] in driver.find_element(By.ID, "selection").text
    webdriver.ActionChains(driver).move_to_element(
        driver.find_elements(By.CSS_SELECTOR, "#overlay .box-lines")[2]
    ).perform()
    assert lines[2]["text"] in driver.find_element(By.ID, "selection").text
    details = driver.find_element(By.ID, "page-details").text
    meta = page["pipeline_metadata"]
    for shown in (meta["tier"], meta["provider_used"], "Attempts", "Timings", "Features"):
        assert shown in details

    shot = tmp_path / "console.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get(SCREENSHOT_ENV):
        (REPO / os.environ[SCREENSHOT_ENV]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, REPO / os.environ[SCREENSHOT_ENV])

    driver.find_element(By.CSS_SELECTOR, "#downloads button[data-format=markdown]").click()
    downloads: Path = driver.downloads  # type: ignore[attr-defined]
    wait_until(driver, lambda d: list(downloads.glob("*.md")))
    markdown = next(downloads.glob("*.md")).read_text()
    assert markdown.startswith("<!-- page 1 -->")
    assert driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    ), "no horizontal scrolling on a laptop screen"
    rows = driver.find_elements(By.CSS_SELECTOR, "#jobs-body tr")
    assert any(job_id == r.get_attribute("data-job-id") and "completed" in r.text for r in rows)
    assert driver.find_elements(By.CSS_SELECTOR, "#usage-chart svg rect.bar")

    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_a_wrong_key_is_refused_and_cancel_and_delete_work(
    browser: webdriver.Chrome, gateway: GatewayProcess, api_key: str, corpus: Path
) -> None:
    """A wrong key gets a message and no sign-in; with a good one, a job is deleted from the
    jobs list by its button (gone from the API too)."""
    driver = browser
    driver.execute_script("sessionStorage.clear()")
    driver.get(f"{gateway.url}/console/")
    driver.find_element(By.ID, "api-key").send_keys("ocrg_wrong")
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    wait_until(driver, lambda d: "not valid" in d.find_element(By.ID, "signin-error").text)
    assert not driver.find_element(By.ID, "app-view").is_displayed()

    with httpx.Client(base_url=gateway.url, headers={"X-API-Key": api_key}, timeout=60) as api:
        content = (corpus / "a_clean_printed/uw3_lines/010004.bin.png").read_bytes()
        job_id = api.post("/v1/ocr", files={"file": ("line.png", content)}).json()["jobId"]
        field = driver.find_element(By.ID, "api-key")
        field.clear()
        field.send_keys(api_key, Keys.ENTER)
        row = f"#jobs-body tr[data-job-id='{job_id}']"
        wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, row))
        driver.find_element(By.CSS_SELECTOR, f"{row} button[aria-label^=Delete]").click()
        wait_until(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, row))
        assert api.get(f"/v1/jobs/{job_id}").status_code == 404
    errors = [
        e
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and "401" not in e["message"]  # the refused key, on purpose
    ]
    assert errors == []
