"""explorer.html in a real browser: Debian's chromium, headless, driven by playwright.

The page is loaded from disk with the network closed to it (it must need none): it renders the
text, a click on a unit and the arrow keys change the unit shown, the pattern search lists
units, and a text made of markup renders as those characters and runs nothing.
scripts/system-packages.sh installs chromium; without it these tests fail and say so.
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from playwright.sync_api import sync_playwright

from rnnkit.diagnostics.explorer import write_explorer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# the flags a root process on a closed network needs (the machine notes: without the
# background-networking ones chromium keeps dialling out and its connections are refused)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = (
    "</script><script>document.title='x'</script>"
    "<img src=x onerror=\"document.title='y'\">&amp; done"
)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: run scripts/system-packages.sh (Debian chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def _page(browser, path):
    page = browser.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith("file:") else 0)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    return page, requests, errors


def _explorer(tmp_path, text, units=6, seed=0):
    tokens = list(text)
    generator = torch.Generator().manual_seed(seed)
    activations = torch.rand(len(tokens), units, generator=generator) * 2 - 1
    activations[:, 3] = torch.tensor([1.0 if c == "e" else -1.0 for c in tokens])  # an "e" unit
    return write_explorer(
        tmp_path / "explorer.html", tokens, activations, title="a test", layer="LSTM layer 0"
    )


def test_the_page_renders_the_text_and_a_click_changes_the_unit(browser, tmp_path):
    text = "the cat sat on the mat\nthe end"
    page, requests, errors = _page(browser, _explorer(tmp_path, text))
    assert page.inner_text("#text").replace("↵", "") == text
    assert page.locator("#text span").count() == len(text)
    first = page.inner_text("#unit")
    colours = page.eval_on_selector("#text span", "s => s.style.background")
    other = page.locator("#units li").nth(2)
    chosen = other.get_attribute("data-unit")
    other.click()
    assert page.inner_text("#unit") == chosen != first
    assert page.eval_on_selector("#text span", "s => s.style.background") != colours
    assert "current" in other.get_attribute("class")
    page.keyboard.press("ArrowDown")
    assert page.inner_text("#unit") == page.locator("#units li").nth(3).get_attribute("data-unit")
    page.keyboard.press("ArrowUp")
    assert page.inner_text("#unit") == chosen
    page.screenshot(path=str(tmp_path / "explorer.png"))
    assert not errors and not requests


def test_the_search_lists_the_unit_that_follows_the_pattern(browser, tmp_path):
    page, _, errors = _page(browser, _explorer(tmp_path, "see the eerie tree there, me"))
    page.fill("#search", "e")
    best = page.locator("#matches li").first
    assert best.get_attribute("data-unit") == "3"
    best.click()
    assert page.inner_text("#unit") == "3"
    page.fill("#search", "zebra")
    assert page.inner_text("#matches") == "not in the text"
    assert not errors


def test_markup_in_the_text_renders_as_characters_and_runs_nothing(browser, tmp_path):
    path = _explorer(tmp_path, HOSTILE)
    page, requests, errors = _page(browser, path)
    assert page.title() == "rnnkit explorer"
    assert page.inner_text("#text") == HOSTILE
    assert page.locator("#text img").count() == 0 and page.locator("img").count() == 0
    assert page.locator("script").count() == 2  # the data and the page's own script
    assert not errors and not requests  # nothing ran, nothing was fetched (no x image)
    html = path.read_text(encoding="utf-8")
    assert "</script><script>document" not in html and "<img" not in html
