"""The seed article's "close the tab", in a real browser, against `trioweb run` processes.

The visitor's actions are Chromium's own: clicking the link that opens a new
tab, closing that tab, aborting a fetch() from page JavaScript, the stop
button (CDP ``Page.stopLoading``). The server side is read from its log: the
cancellation line, the token's callback, and the absence of the line a
completed draw writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from .conftest import ServerProcess, wait

pytestmark = pytest.mark.e2e

CANCELLED = "GET /lottery cancelled: client disconnected"
CALLBACK = "lottery INFO client left: the draw was called off"
COMPLETED = "drew lucky number"


@pytest.fixture(scope="module")
def lottery(serve: Callable[[str], ServerProcess]) -> ServerProcess:
    return serve("examples.lottery:app")


@pytest.fixture
def home(browser: WebDriver) -> Iterator[str]:
    """The one tab every test starts and ends with."""
    handle = browser.current_window_handle
    yield handle
    for other in [h for h in browser.window_handles if h != handle]:
        browser.switch_to.window(other)
        browser.close()
    browser.switch_to.window(handle)


def open_front_page_and_click(browser: WebDriver, lottery: ServerProcess, home: str) -> str:
    """The article's visitor: the shop's page, then the link; the handle of the new tab."""
    browser.get(lottery.url + "/")
    link = wait(browser).until(lambda d: d.find_element(By.ID, "draw"))
    assert link.get_attribute("target") == "_blank"
    link.click()
    wait(browser).until(lambda d: len(d.window_handles) == 2)
    [tab] = [h for h in browser.window_handles if h != home]
    return tab


def test_closing_the_new_tab_cancels_the_draw(
    browser: WebDriver, lottery: ServerProcess, home: str
) -> None:
    mark = lottery.mark()
    clicked = time.monotonic()
    tab = open_front_page_and_click(browser, lottery, home)
    lottery.wait_for("lottery INFO drawing", since=mark)  # the handler runs
    time.sleep(max(0.0, 1.0 - (time.monotonic() - clicked)))  # the visitor: about a second
    browser.switch_to.window(tab)
    browser.close()
    browser.switch_to.window(home)
    log = lottery.wait_for(CANCELLED, since=mark, timeout=5)
    assert CALLBACK in log  # the token's callback ran
    assert COMPLETED not in log  # logged after the handler ended: it never completed


def test_waiting_shows_the_lucky_number(
    browser: WebDriver, lottery: ServerProcess, home: str
) -> None:
    mark = lottery.mark()
    tab = open_front_page_and_click(browser, lottery, home)
    browser.switch_to.window(tab)
    lucky = wait(browser).until(lambda d: d.find_element(By.ID, "lucky")).text
    assert 0 <= int(lucky) <= 999
    log = lottery.wait_for(f"{COMPLETED} {lucky}", since=mark)
    assert CANCELLED not in log
    assert CALLBACK not in log  # a request that completes never sets its token


def test_an_aborted_fetch_cancels_the_draw(
    browser: WebDriver, lottery: ServerProcess, home: str
) -> None:
    browser.get(lottery.url + "/")
    wait(browser).until(lambda d: d.find_element(By.ID, "draw"))
    mark = lottery.mark()
    browser.execute_script(
        """
        window.controller = new AbortController();
        window.outcome = "pending";
        fetch("/lottery", {signal: controller.signal}).then(
            () => { window.outcome = "completed"; },
            (error) => { window.outcome = error.name; });
        """
    )
    lottery.wait_for("lottery INFO drawing", since=mark)
    browser.execute_script("window.controller.abort();")
    assert wait(browser).until(lambda d: d.execute_script("return window.outcome") != "pending")
    assert browser.execute_script("return window.outcome") == "AbortError"
    log = lottery.wait_for(CANCELLED, since=mark, timeout=5)
    assert CALLBACK in log
    assert COMPLETED not in log


def test_the_stop_button_cancels_the_draw(
    browser: WebDriver, lottery: ServerProcess, home: str
) -> None:
    mark = lottery.mark()
    browser.get(lottery.url + "/lottery")  # returns at once (page load strategy "none")
    lottery.wait_for("lottery INFO drawing", since=mark)
    browser.execute_cdp_cmd("Page.stopLoading", {})  # what the toolbar's X does
    log = lottery.wait_for(CANCELLED, since=mark, timeout=5)
    assert CALLBACK in log
    assert COMPLETED not in log


def test_closing_the_tab_ends_the_event_stream(
    browser: WebDriver, serve: Callable[[str], ServerProcess], home: str
) -> None:
    ticker = serve("examples.ticker:app")
    browser.switch_to.new_window("tab")
    browser.get(ticker.url + "/")
    # Two ticks shown: the stream is live and the page keeps getting events.
    wait(browser).until(lambda d: d.find_element(By.ID, "tick").text in {"1", "2", "3", "4"})
    mark = ticker.mark()
    assert "ticker stream ended" not in ticker.log()
    browser.close()
    browser.switch_to.window(home)
    ticker.wait_for("ticker stream ended after tick", since=mark, timeout=5)  # its finally ran


def test_closing_the_tab_ends_the_websocket_handler(
    browser: WebDriver, serve: Callable[[str], ServerProcess], home: str
) -> None:
    chat = serve("examples.chat:app")
    browser.switch_to.new_window("tab")
    browser.get(chat.url + "/?room=e2e&name=visitor")
    wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state"))
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "open"
    wait(browser).until(lambda d: "visitor joined" in d.find_element(By.ID, "log").text)
    mark = chat.mark()
    browser.close()
    browser.switch_to.window(home)
    chat.wait_for("chat INFO visitor left room e2e", since=mark, timeout=5)
