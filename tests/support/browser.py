"""Headless Chromium for tests, driven through chromedriver with the W3C
WebDriver protocol (HTTP and JSON, spoken here with urllib: no dependency).

`ChromeDriver` runs the chromedriver process on a port it picks itself;
`Browser` is one WebDriver session (one headless Chromium with a fresh
profile), `Element` an element of its current page.  Finding waits: it polls
until the element is there or a few seconds have passed.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar

import pytest

from . import in_ci

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # W3C: how an element is named
READY = re.compile(r"started successfully on port (\d+)")
WAIT_SECONDS = 5.0
T = TypeVar("T")


class WebDriverError(Exception):
    """An error answer of chromedriver: its W3C error code and message."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__("%s: %s" % (error, message))
        self.error = error


def find_browser() -> Tuple[Optional[str], Optional[str]]:
    """(chromium, chromedriver) paths found on PATH; None for a missing one."""
    chromium = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    return chromium, shutil.which("chromedriver")


def require_browser() -> Tuple[str, str]:
    """(chromium, chromedriver) paths; the test is skipped without them, or
    fails under CI, which must run it."""
    chromium, chromedriver = find_browser()
    if chromium and chromedriver:
        return chromium, chromedriver
    missing = "headless Chromium needs chromium and chromedriver " \
              "(apt-get install chromium chromium-driver)"
    if in_ci():
        pytest.fail("CI must run the browser tests: " + missing)
    pytest.skip(missing)


def wait_for(condition: Callable[[], Optional[T]], what: str,
             timeout: float = WAIT_SECONDS) -> T:
    """The first true value of `condition()`, polled until `timeout`; a
    WebDriverError("no such element") from it counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except WebDriverError as err:
            if err.error != "no such element":
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("waited %.0f s for %s" % (timeout, what))
        time.sleep(0.05)


class ChromeDriver:
    """chromedriver on a free port of 127.0.0.1; use as a context manager."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.proc: Optional[subprocess.Popen] = None
        self.url = ""

    def start(self, timeout: float = 30) -> "ChromeDriver":
        self.proc = subprocess.Popen([self.path, "--port=0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        said, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode(errors="replace")
            if not line:
                break
            said.append(line)
            match = READY.search(line)
            if match:
                self.url = "http://127.0.0.1:%s" % match.group(1)
                return self
        self.stop()
        raise RuntimeError("chromedriver did not start: %s" % "".join(said))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None,
             timeout: float = 60) -> Any:
        """The "value" of chromedriver's answer to one WebDriver command."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return json.loads(answer.read())["value"]
        except urllib.error.HTTPError as err:
            value = json.loads(err.read())["value"]
            raise WebDriverError(value["error"], value["message"]) from None

    def __enter__(self) -> "ChromeDriver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Browser:
    """A WebDriver session: headless Chromium with a throw-away profile, as
    root too (--no-sandbox); `javascript=False` turns off the pages' scripts
    (WebDriver's own script commands still work)."""

    def __init__(self, driver: ChromeDriver, chromium: str, javascript: bool = True,
                 window: Tuple[int, int] = (1200, 900)) -> None:
        self.driver = driver
        self.javascript = javascript
        self.profile = tempfile.TemporaryDirectory(prefix="cks-chromium-")
        options: Dict[str, Any] = {"binary": chromium, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=%d,%d" % window,
            "--user-data-dir=" + self.profile.name]}
        if not javascript:
            options["prefs"] = {"profile.managed_default_content_settings.javascript": 2}
        try:
            answer = driver.call("POST", "/session", {"capabilities": {"alwaysMatch": {
                "browserName": "chrome", "goog:chromeOptions": options}}})
        except BaseException:
            self.profile.cleanup()
            raise
        self.path = "/session/" + answer["sessionId"]

    def call(self, method: str, path: str = "", body: Optional[Dict[str, Any]] = None) -> Any:
        return self.driver.call(method, self.path + path, body)

    def open(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return self.call("GET", "/url")

    @property
    def title(self) -> str:
        return self.call("GET", "/title")

    def find(self, css: str, timeout: float = WAIT_SECONDS) -> "Element":
        """The first element matching `css`, waiting for it to appear."""
        return self._find("css selector", css, timeout)

    def find_link(self, text: str, timeout: float = WAIT_SECONDS) -> "Element":
        """The first link whose visible text is `text`, waiting for it to appear."""
        return self._find("link text", text, timeout)

    def _find(self, using: str, value: str, timeout: float) -> "Element":
        return wait_for(lambda: Element(self, self.call("POST", "/element", {
            "using": using, "value": value})[ELEMENT_KEY]), "%s %r" % (using, value), timeout)

    def wait_for_title(self, title: str, timeout: float = WAIT_SECONDS) -> None:
        """Wait until the page shown is titled `title` (a click's page has loaded)."""
        try:
            wait_for(lambda: self.title == title, "the page %r" % title, timeout)
        except AssertionError as err:
            raise AssertionError("%s; the browser shows %r at %s"
                                 % (err, self.title, self.url)) from None

    def text(self) -> str:
        """The page's visible text."""
        return self.find("body").text

    def execute(self, script: str, *args: Any) -> Any:
        """The value of `script` (a function body) run in the page."""
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self, path: str) -> None:
        """A PNG of the whole page, beyond the window too (Chromium's DevTools
        command through chromedriver)."""
        size = self.devtools("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.devtools("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                     "scale": 1}})
        with open(path, "wb") as handle:
            handle.write(base64.b64decode(shot["data"]))

    def devtools(self, command: str, params: Optional[Dict[str, Any]] = None) -> Any:
        return self.call("POST", "/goog/cdp/execute", {"cmd": command, "params": params or {}})

    def quit(self) -> None:
        try:
            self.call("DELETE")
        finally:
            self.profile.cleanup()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.quit()


class Element:
    """An element of the page a Browser shows."""

    def __init__(self, browser: Browser, element_id: str) -> None:
        self.browser = browser
        self.path = "/element/" + element_id

    def call(self, method: str, path: str = "", body: Optional[Dict[str, Any]] = None) -> Any:
        return self.browser.call(method, self.path + path, body)

    def click(self) -> None:
        """A mouse click in the element's middle, as a person makes it."""
        self.call("POST", "/click", {})

    def send_keys(self, text: str) -> None:
        self.call("POST", "/value", {"text": text})

    @property
    def text(self) -> str:
        """The element's text as rendered: what a person sees of it."""
        return self.call("GET", "/text")

    @property
    def rect(self) -> Dict[str, float]:
        """x, y, width and height in CSS pixels (no script needed)."""
        return self.call("GET", "/rect")

    def property(self, name: str) -> Any:
        """A DOM property, e.g. an image's naturalWidth."""
        return self.call("GET", "/property/" + name)