"""Headless Chromium from Debian driven by Selenium, and page screenshots as artefacts.

The browser is ``/usr/bin/chromium`` with ``/usr/bin/chromedriver`` (Debian's chromium and
chromium-driver packages): nothing is downloaded. Each browser gets a fresh profile.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
)
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
WAIT_S = 30


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile in ``profile``; always quit."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (./run test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=DriverService(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT_S)
    driver.set_window_size(*WIDTHS["desktop"])
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, until: Callable[[WebDriver], Any], timeout: float = WAIT_S) -> Any:
    """Poll ``until`` in the browser until it returns something true."""
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(until)


def left(page: WebElement) -> Callable[[WebDriver], bool]:
    """The condition that ``page`` (a document's ``html`` element) was replaced by another.

    Asked mid-navigation, chromedriver may answer "node ... does not belong to the
    document" instead of the stale-element error: that also means the old page is gone.
    """

    def replaced(_driver: WebDriver) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as err:
            if "does not belong to the document" not in str(err):
                raise
            return True
        return False

    return replaced


def sign_in_at(driver: WebDriver, url: str, token: str) -> None:
    """Open ``url``, sign in on the form it leads to, and open ``url`` again."""
    driver.get(url)
    wait(driver, lambda d: d.find_elements(By.ID, "token"))
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    wait(driver, lambda d: d.find_elements(By.ID, "sign-out"))
    driver.get(url)


class Screens:
    """Screenshots of each page at desktop and phone widths, kept under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def take(self, driver: WebDriver, name: str) -> None:
        """The whole page at every width, then back to the desktop width."""
        for width_name, (width, height) in WIDTHS.items():
            driver.set_window_size(width, height)
            full = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(width, min(max(int(full) + 140, height), 4000))
            path = self.folder / f"{name}-{width_name}.png"
            driver.save_screenshot(str(path))
            self.taken.append(path)
        driver.set_window_size(*WIDTHS["desktop"])
