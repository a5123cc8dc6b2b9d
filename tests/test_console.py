"""The web console (/console) in a real browser: Debian's headless Chromium driven by Selenium
through the system chromedriver (Selenium Manager never runs, nothing is downloaded)."""

from __future__ import annotations

import base64
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.gateway_process import REPO, GatewayProcess, create_tenant

CHROMIUM = os.environ.get("OCR_GATEWAY_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("OCR_GATEWAY_CHROMEDRIVER", "/usr/bin/chromedriver")
SCAN = "f_pdfs/ocrmypdf/ccitt.pdf"  # a one-page scanned PDF
TABLE = "d_tables/tabula/AnimalSounds.pdf"  # a born-digital page with one table
SCREEN = (1366, 768)  # a laptop screen
# Set to a path (docs/console.png) to write the README's screenshot there too.
SCREENSHOT_ENV = "OCR_GATEWAY_CONSOLE_SCREENSHOT"


@pytest.fixture(scope="module")
def api_key(gateway: GatewayProcess) -> str:
    """One tenant for the module's tests (creating one through the CLI takes seconds)."""
    return create_tenant(gateway.config, name="console", credits=1000)


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
    # the jobs list is redrawn while jobs run: an element found may be replaced before use
    wait = WebDriverWait(
        driver, timeout_s, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(lambda d: what(d))


def click(driver: webdriver.Chrome, selector: str) -> None:
    """Click what `selector` finds once it is there (found again if it was redrawn)."""
    wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, selector).click() or True)


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


def lines_tiff(corpus: Path, pages: int) -> bytes:
    """A multi-page TIFF of uw3 line strips."""
    names = ["010003", "010004", "010005", "010008"]
    frames = [
        Image.open(corpus / f"a_clean_printed/uw3_lines/{names[i % 4]}.bin.png").convert("L")
        for i in range(pages)
    ]
    out = io.BytesIO()
    frames[0].save(out, format="TIFF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def assert_boxes_drawn(
    driver: webdriver.Chrome, level: str, geometries: list[dict[str, float]]
) -> None:
    """Choose `level`; one box per geometry, each where its relative geometry puts it on the
    preview image (first, middle and last compared, within 1.5 px)."""
    driver.find_element(By.CSS_SELECTOR, f"input[name=level][value={level}]").click()
    wait_until(
        driver,
        lambda d: (
            d.find_element(By.ID, "overlay").get_attribute("data-count") == str(len(geometries))
            and len(d.find_elements(By.CSS_SELECTOR, f"#overlay .box-{level}")) == len(geometries)
        ),
    )
    drawn = driver.find_elements(By.CSS_SELECTOR, f"#overlay .box-{level}")
    frame = rect(driver, driver.find_element(By.ID, "page-image"))
    for index in sorted({0, len(drawn) // 2, len(drawn) - 1}):
        box, g = rect(driver, drawn[index]), geometries[index]
        assert box["x"] == pytest.approx(frame["x"] + g["x"] * frame["width"], abs=1.5)
        assert box["y"] == pytest.approx(frame["y"] + g["y"] * frame["height"], abs=1.5)
        assert box["width"] == pytest.approx(g["width"] * frame["width"], abs=1.5)
        assert box["height"] == pytest.approx(g["height"] * frame["height"], abs=1.5)


def drop_file(driver: webdriver.Chrome, path: Path, media_type: str) -> None:
    """Drop `path` on the drop zone as a browser does: a drop event carrying the file."""
    driver.execute_script(
        "const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));"
        "const transfer = new DataTransfer();"
        "transfer.items.add(new File([bytes], arguments[1], {type: arguments[2]}));"
        "const zone = document.getElementById('drop-zone');"
        "for (const type of ['dragenter', 'dragover', 'drop']) {"
        "  zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true,"
        "    cancelable: true}));"
        "}",
        base64.b64encode(path.read_bytes()).decode(),
        path.name,
        media_type,
    )


def open_finished_job(driver: webdriver.Chrome, quote: str) -> None:
    """The quote shown, Submit pressed, the job watched until it completed."""
    wait_until(driver, lambda d: quote in d.find_element(By.ID, "quote").text)
    submit = driver.find_element(By.ID, "submit")
    assert submit.is_enabled()
    submit.click()
    status = driver.find_element(By.ID, "job-status")
    wait_until(driver, lambda d: status.text.startswith("completed"), timeout_s=180)
    image = driver.find_element(By.ID, "page-image")
    wait_until(driver, lambda d: d.execute_script("return arguments[0].naturalWidth > 0", image))


def test_a_new_user_signs_in_drops_a_pdf_and_sees_its_boxes(
    browser: webdriver.Chrome, gateway: GatewayProcess, api_key: str, corpus: Path, tmp_path: Path
) -> None:
    """Sign in with a key, drop a scanned PDF, see its quote, submit, watch it finish; every
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

    drop_file(driver, corpus / SCAN, "application/pdf")
    open_finished_job(driver, "Quote: 1 credits for 1 page")
    with httpx.Client(base_url=gateway.url, headers={"X-API-Key": api_key}, timeout=30) as api:
        job_id = api.get("/v1/jobs", params={"limit": 1}).json()["jobs"][0]["id"]
        page = api.get(f"/v1/jobs/{job_id}").json()["results"][0]
    expected = expected_boxes(page)
    assert expected["words"], "the scan has words"
    image = driver.find_element(By.ID, "page-image")
    size = driver.execute_script(
        "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image
    )
    dims = page["document_metadata"]["page_dimensions"]
    assert size == [dims["width"], dims["height"]]
    for level, geometries in expected.items():
        assert_boxes_drawn(driver, level, geometries)

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


def test_a_picked_table_page_shows_its_cells_and_jobs_are_deleted_and_cancelled(
    browser: webdriver.Chrome, gateway: GatewayProcess, api_key: str, corpus: Path
) -> None:
    """A wrong key gets a message and no sign-in; with a good one, a born-digital table page
    picked with the file chooser shows one box per table cell of the JSON, where its geometry
    says; its job is deleted by its button in the jobs list (gone from the API too), and a
    running job is cancelled by its own."""
    driver = browser
    driver.execute_script("sessionStorage.clear()")
    driver.get(f"{gateway.url}/console/")
    driver.find_element(By.ID, "api-key").send_keys("ocrg_wrong")
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    wait_until(driver, lambda d: "not valid" in d.find_element(By.ID, "signin-error").text)
    assert not driver.find_element(By.ID, "app-view").is_displayed()
    field = driver.find_element(By.ID, "api-key")
    field.clear()
    field.send_keys(api_key, Keys.ENTER)
    wait_until(driver, lambda d: d.find_element(By.ID, "app-view").is_displayed())

    driver.find_element(By.ID, "file-input").send_keys(str(corpus / TABLE))
    open_finished_job(driver, "Quote: 1 credits for 1 page")
    with httpx.Client(base_url=gateway.url, headers={"X-API-Key": api_key}, timeout=60) as api:
        job_id = api.get("/v1/jobs", params={"limit": 1}).json()["jobs"][0]["id"]
        page = api.get(f"/v1/jobs/{job_id}").json()["results"][0]
        cells = [
            cell["geometry"]
            for block in page["content_blocks"]
            if block.get("table")
            for cell in block["table"]["cells"]
        ]
        assert cells, "the page has a table"
        assert_boxes_drawn(driver, "cells", cells)
        row = f"#jobs-body tr[data-job-id='{job_id}']"
        click(driver, f"{row} button[aria-label^=Delete]")
        wait_until(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, row))
        assert api.get(f"/v1/jobs/{job_id}").status_code == 404
    assert driver.find_element(By.ID, "job-title").text == "No job open"

    with httpx.Client(base_url=gateway.url, headers={"X-API-Key": api_key}, timeout=60) as api:
        long = api.post("/v1/ocr", files={"file": ("long.tif", lines_tiff(corpus, 8))})
        job_id = long.json()["jobId"]
        row = f"#jobs-body tr[data-job-id='{job_id}']"
        driver.find_element(By.ID, "refresh-jobs").click()
        click(driver, f"{row} button[aria-label^=Cancel]")
        wait_until(driver, lambda d: "cancelled" in d.find_element(By.CSS_SELECTOR, row).text)
        assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    errors = [
        e
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and "401" not in e["message"]  # the refused key, on purpose
    ]
    assert errors == []
