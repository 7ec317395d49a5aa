"""End-to-end harness: real server processes, Debian's Chromium through chromedriver, nginx.

Everything here is synchronous (selenium is): the tests are plain functions,
and the servers are other processes, watched through their logs with bounded
polling. Each process is started here and ended here, by its PID; each
temporary folder is removed. A test skips, saying why, only where a binary is
truly missing (``.ci/setup-e2e`` installs them).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# GUIDE.md's flags: what makes Debian's Chromium run headless on this machine.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def deadline_loop(timeout: float, what: str) -> Iterator[None]:
    """Yield until ``timeout`` seconds have passed, then fail naming ``what``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        yield
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """``trioweb run MODULE:ATTR --port 0`` in a process of its own, logging to a file."""

    def __init__(self, target: str, folder: Path) -> None:
        self.target = target
        self.log_path = folder / f"{target.replace(':', '-')}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trioweb", "run", target, "--port", "0"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        found = None
        for _ in deadline_loop(30, f"{target} serving"):
            if self.process.poll() is not None:
                raise AssertionError(f"{target} exited before serving:\n{self.log()}")
            found = re.search(r"serving on http://127\.0\.0\.1:(\d+)", self.log())
            if found:
                break
        assert found is not None
        self.port = int(found.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def mark(self) -> int:
        """Where the log ends now: later waits look only at what comes after."""
        return len(self.log())

    def wait_for(self, text: str, since: int = 0, timeout: float = 10) -> str:
        """Wait until ``text`` appears in the log after ``since``; the log from there."""
        for _ in deadline_loop(timeout, f"the log line {text!r} of {self.target}"):
            tail = self.log()[since:]
            if text in tail:
                return tail
        raise AssertionError  # unreachable: deadline_loop raises

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # graceful, as systemd would
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()  # only the process started here, by its handle
                self.process.wait(timeout=15)
        self._log.close()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="trioweb-e2e-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def serve(workdir: Path) -> Iterator[Callable[[str], ServerProcess]]:
    """Start servers by target; all are stopped at the end of the module."""
    started: list[ServerProcess] = []

    def start(target: str) -> ServerProcess:
        server = ServerProcess(target, workdir)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def need_chromium() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (bash .ci/setup-e2e installs them)")


def need_nginx() -> None:
    if not Path(NGINX).exists():
        pytest.skip(f"{NGINX} not installed (bash .ci/setup-e2e installs it)")


@pytest.fixture(scope="module")
def browser(workdir: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile, driven by Debian's chromedriver."""
    need_chromium()
    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = workdir / "chromium-profile"
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = str(CHROMIUM)
    options.page_load_strategy = "none"  # get() returns at once: the tests wait for what they need
    service = Service(
        executable_path=str(CHROMEDRIVER), log_output=str(workdir / "chromedriver.log")
    )
    previous = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # selenium must not look for a driver online
    try:
        driver = webdriver.Chrome(options=options, service=service)
    finally:
        if previous is None:
            del os.environ["SE_OFFLINE"]
        else:
            os.environ["SE_OFFLINE"] = previous
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()  # ends the chromedriver and Chromium processes it started


def wait(driver: WebDriver, timeout: float = 10) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, timeout, poll_frequency=0.02)
