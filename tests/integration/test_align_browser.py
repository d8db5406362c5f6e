"""alignment.html in a real headless browser (Debian's Chromium through Selenium): it loads without console
errors, seeking A seeks B to the aligned time, and what it shows is not blank.

Install the browser with `apt-get install -y chromium chromium-driver` (and `pip install selenium`, in the
`test` extra); without them these tests skip with the reason."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import main

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file() or not CHROMEDRIVER.is_file(),
                       reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"),
]


@pytest.fixture(scope="module")
def page(sample_project, tmp_path_factory) -> Path:
    """An alignment of two sample videos (their keypoints from the dataset's pose files)."""
    import os

    project = tmp_path_factory.mktemp("browser") / "project"
    shutil.copytree(sample_project, project, symlinks=True)
    cwd = os.getcwd()
    os.chdir(project)
    try:
        for args in (["keypoints", "-d", "sample", "-j", "1"],
                     ["align", "sample:serve_train_000", "sample:serve_val_000", "--out", "out"]):
            result = CliRunner().invoke(main, ["-q", *args])
            assert result.exit_code == 0, result.output
    finally:
        os.chdir(cwd)
    return project / "out"


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                "--window-size=1400,1000", "--mute-audio"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def wait_for(driver, script: str, timeout: float = 20.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(script))


def videos_ready(driver) -> None:
    wait_for(driver, "return ['video-a', 'video-b'].every(id => document.getElementById(id).readyState >= 2)")


def test_page_loads_without_console_errors(page, browser):
    browser.get((page / "alignment.html").as_uri())
    videos_ready(browser)
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
    assert browser.execute_script("return document.getElementById('matrix').width") > 0


def test_seeking_a_seeks_b_to_the_aligned_time(page, browser):
    with (page / "alignment.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    fps_a = 1 / float(rows[1]["time_a_s"])
    browser.get((page / "alignment.html").as_uri())
    videos_ready(browser)
    for frame in (len(rows) // 3, len(rows) - 2, 1):
        t = (frame + 0.5) / fps_a
        browser.execute_script("document.getElementById('video-a').currentTime = arguments[0]", t)
        expected = float(rows[frame]["time_b_s"])
        wait_for(browser, "const b = document.getElementById('video-b');"
                          f"return !b.seeking && Math.abs(b.currentTime - {expected}) < 0.2;", timeout=10)
        shown = browser.execute_script("return document.getElementById('video-b').currentTime")
        b_fps = browser.execute_script("return JSON.parse(document.getElementById('alignment-data').textContent).fps_b")
        assert abs(shown - expected) <= 1.0 / b_fps, (frame, shown, expected)
        label = browser.execute_script("return document.getElementById('time-b').textContent")
        assert f"frame {rows[frame]['frame_b']})" in label


def test_screenshot_is_not_blank(page, browser, tmp_path):
    import cv2

    browser.get((page / "alignment.html").as_uri())
    videos_ready(browser)
    browser.execute_script("document.getElementById('video-a').currentTime = 1.0")
    wait_for(browser, "return !document.getElementById('video-b').seeking")
    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot))
    image = cv2.imread(str(shot))
    assert image is not None and image.std() > 20  # text, two videos, the matrix: far from one flat colour
    video = browser.find_element("id", "video-a")
    box = video.rect
    crop = image[int(box["y"]) : int(box["y"] + box["height"]), int(box["x"]) : int(box["x"] + box["width"])]
    assert crop.size and np.std(crop) > 5  # a decoded frame, not an empty black box
