"""The web page at `/` in a real browser: each view works against a real server, logs no
console error and fetches nothing from another origin."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import httpx
import pytest
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from models.digits import load_digits_split

pytestmark = pytest.mark.browser

# Where each view's screenshot goes: docs/img refreshes the README's (BLOCKSERVE_SCREENSHOTS=
# docs/img); unset, a scratch directory, so that a test run leaves the tree as it was.
SCREENSHOTS = Path(os.environ.get("BLOCKSERVE_SCREENSHOTS") or tempfile.mkdtemp(prefix="ui-"))
WAIT_S = 60
PHONE_WIDTH = 375
TRAFFIC_REQUESTS = 20


def wait(driver, condition, timeout: float = WAIT_S):
    return WebDriverWait(driver, timeout).until(condition)


def text_of(selector: str):
    """The rendered text of every element `selector` matches, read in one script: the page
    rebuilds its model cards on every poll, so an element found by one WebDriver call can be gone
    by the next."""
    script = "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText).join(' ')"
    return lambda driver: driver.execute_script(script, selector)


def open_view(driver, base_url: str, tab: str) -> None:
    if not driver.current_url.startswith(base_url):
        driver.get(f"{base_url}/")
    cards = driver.find_element(By.ID, "model-cards")
    wait(driver, lambda _: "READY" in cards.get_attribute("textContent"))
    driver.find_element(By.ID, f"tab-{tab}").click()
    assert driver.find_element(By.ID, f"view-{tab}").is_displayed()


def screenshot(driver, view: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"ui-{view}.png"))


def assert_clean(driver, base_url: str) -> None:
    """No console error and no request to another origin since the last check."""
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    assert urls, "the performance log recorded no request"
    own = (f"{base_url}/", f"blob:{base_url}/", "data:")
    assert [url for url in urls if not url.startswith(own)] == []


def digit_png(directory: Path, label: int) -> Path:
    """The first held-out digit of `label`, as an 8x8 grayscale PNG."""
    split = load_digits_split()
    index = int((split.test_labels == label).nonzero()[0][0])
    path = directory / f"digit-{label}.png"
    Image.fromarray(split.test_images[index]).save(path)
    return path


def digits_requests_per_second(driver) -> float:
    figures = text_of('[aria-label="Model digits@1"] .figures')(driver)
    return float(re.search(r"requests/s\s+([\d.]+)", figures).group(1))


def digits_chart_points(driver) -> int:
    """How many polls the digits card's first chart holds (read in one script, as `text_of`)."""
    points = driver.execute_script(
        "return document.querySelector(arguments[0])?.getAttribute('points') ?? ''",
        '[aria-label="Model digits@1"] svg.spark polyline',
    )
    return len(points.split())


def test_models_view_shows_each_model_with_its_live_figures(driver, server, tmp_path):
    driver.get(f"{server}/")
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card .figures")) == 2)
    text = text_of("#model-cards")(driver)
    assert "digits" in text and "resnet18" in text
    assert "trained" in text and "random init" in text
    assert "requests/s" in text and "p99" in text and "queue depth" in text
    assert len(driver.find_elements(By.CSS_SELECTOR, ".card svg.spark polyline")) == 10
    digit = digit_png(tmp_path, 7).read_bytes()

    def traffic_charted(driver) -> bool:
        """Send a round of requests; true once the digits charts hold a few polls of it."""
        for _ in range(TRAFFIC_REQUESTS):
            answer = httpx.post(f"{server}/predict?model=digits", files={"files": digit})
            assert answer.status_code == 200
        return digits_requests_per_second(driver) > 0 and digits_chart_points(driver) >= 5

    wait(driver, traffic_charted, timeout=60)
    screenshot(driver, "models")
    assert_clean(driver, server)


def test_uploaded_digit_pngs_are_each_shown_with_their_label(driver, server, tmp_path):
    open_view(driver, server, "try")
    Select(driver.find_element(By.ID, "try-model")).select_by_value("digits")
    paths = [digit_png(tmp_path, label) for label in (3, 8)]
    driver.find_element(By.ID, "try-files").send_keys("\n".join(str(p) for p in paths))
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#try-results .bars")) == 2)
    shown = {}
    for result in driver.find_elements(By.CSS_SELECTOR, "#try-results figure"):
        caption = result.find_element(By.TAG_NAME, "figcaption").text
        assert re.search(r"digits, \d+ ms", caption)
        shown[caption.split(" ")[0]] = result.find_element(By.CSS_SELECTOR, ".bars .label").text
    assert shown == {"digit-3.png": "3", "digit-8.png": "8"}
    assert driver.find_element(By.ID, "try-results").get_attribute("aria-live") == "polite"
    assert_clean(driver, server)


def test_drawing_a_digit_on_the_canvas_shows_a_label_with_a_score(driver, server):
    open_view(driver, server, "try")
    Select(driver.find_element(By.ID, "try-model")).select_by_value("digits")
    canvas = driver.find_element(By.ID, "sketch-canvas")
    assert canvas.is_displayed()
    strokes = ActionChains(driver).move_to_element_with_offset(canvas, -40, -80).click_and_hold()
    for dx, dy in [(40, 0), (40, 0), (0, 40), (0, 40), (-80, 40), (0, 40), (80, 0)]:
        strokes.move_by_offset(dx, dy)
    strokes.release().perform()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#sketch-result .bars li"))
    label = driver.find_element(By.CSS_SELECTOR, "#sketch-result .bars li .label").text
    score = float(driver.find_element(By.CSS_SELECTOR, "#sketch-result .bars li .score").text)
    assert label in {str(digit) for digit in range(10)}
    assert 0 < score <= 1
    screenshot(driver, "try-it")
    assert_clean(driver, server)


def test_resnet18_architecture_shows_its_totals_and_diagram(driver, server):
    open_view(driver, server, "architecture")
    Select(driver.find_element(By.ID, "arch-model")).select_by_value("resnet18")
    wait(driver, lambda d: "Total params: 11,689,512" in text_of("#arch-totals")(d))
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#arch-diagram svg"))
    rows = driver.find_elements(By.CSS_SELECTOR, "#arch-table tbody tr")
    assert len(rows) > 20
    link = driver.find_element(By.ID, "bundle-link").get_attribute("href")
    assert link == f"{server}/models/resnet18/bundle"
    screenshot(driver, "architecture")
    assert_clean(driver, server)


def test_manage_loads_and_unloads_a_model_and_follows_its_state(driver, server, management_token):
    open_view(driver, server, "manage")
    driver.find_element(By.ID, "token").send_keys(management_token)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#manage-arch option"))
    driver.find_element(By.ID, "manage-name").send_keys("digits-random")
    Select(driver.find_element(By.ID, "manage-arch")).select_by_value("resnet_digits")
    driver.find_element(By.CSS_SELECTOR, "#load-form button[type=submit]").click()
    wait(driver, lambda d: "digits-random: READY" in text_of("#manage-status")(d))
    screenshot(driver, "manage")
    driver.find_element(By.ID, "unload").click()
    wait(driver, lambda d: "Unloading" not in text_of("#manage-status")(d))
    wait(driver, lambda d: "READY" not in text_of("#manage-status")(d))
    assert_clean(driver, server)


def press(driver, key: str) -> str:
    """Press `key` wherever the focus is; the id of the element focused afterwards."""
    ActionChains(driver).send_keys(key).perform()
    return driver.switch_to.active_element.get_attribute("id")


def test_keyboard_reaches_the_tabs_and_the_main_controls(driver, server):
    driver.get(f"{server}/")
    cards = driver.find_element(By.ID, "model-cards")
    wait(driver, lambda _: "READY" in cards.text)
    press(driver, Keys.TAB)  # the skip link
    assert press(driver, Keys.TAB) == "tab-models"
    assert press(driver, Keys.ARROW_RIGHT) == "tab-try"
    assert driver.find_element(By.ID, "view-try").is_displayed()
    reached = {press(driver, Keys.TAB) for _ in range(4)}
    assert {"try-model", "try-top-k", "try-files"} <= reached


def test_page_fits_a_phone_sized_screen(driver, server):
    desktop = driver.get_window_size()
    driver.set_window_size(PHONE_WIDTH, desktop["height"])
    try:
        driver.get(f"{server}/")
        wait(driver, lambda d: "READY" in text_of("#model-cards")(d))
        width = driver.execute_script("return document.documentElement.scrollWidth")
        viewport = driver.execute_script("return document.documentElement.clientWidth")
        assert width <= viewport
        screenshot(driver, "phone")
    finally:
        driver.set_window_size(desktop["width"], desktop["height"])
