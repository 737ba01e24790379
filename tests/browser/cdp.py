"""Open a local HTML file in headless Chromium with networking off, through the Chrome DevTools
Protocol over a pipe (``--remote-debugging-pipe``: no port, no websocket library, stdlib only).

    with Browser() as b:
        page = b.open(Path("report.html"))
        page.screenshot(Path("shot.png"))
        page.requests, page.failed, page.console_errors

Every request the page makes is recorded; any URL that is not ``file:`` or ``data:`` counts as
a request to another host. Networking is cut three ways: DevTools offline emulation, a proxy
that points nowhere, and a host resolver that resolves nothing.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
    "--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
    "--allow-file-access-from-files",
]


def find_chromium() -> str | None:
    """Path of Debian's ``chromium`` (or another Chrome) or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    pass


@dataclass
class PageResult:
    """What happened while a page loaded."""

    url: str
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    loaded: bool = False


class Browser:
    """A headless Chromium driven over ``--remote-debugging-pipe``."""

    def __init__(self, executable: str | None = None, timeout: float = 60.0):
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise CDPError("chromium not found")
        self.timeout = timeout
        self._id = 0
        self._buf = b""
        self._events: list[dict] = []

    # -- process and transport -------------------------------------------------------------
    def __enter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="cdp-profile-")
        to_chrome_r, self._to_chrome = os.pipe()      # chrome reads fd 3
        self._from_chrome, from_chrome_w = os.pipe()  # chrome writes fd 4

        def child_fds() -> None:
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-pipe",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=child_fds,  # noqa: PLW1509 - fds 3/4 are the CDP pipe
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 - closing a dead browser
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def _read_message(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("timed out waiting for chromium")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise CDPError("chromium closed the DevTools pipe")
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and wait for its answer; events seen meanwhile are queued."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def _wait_event(self, method: str, session: str, deadline: float) -> None:
        while True:
            for ev in self._events:
                if ev.get("method") == method and ev.get("sessionId") == session:
                    return
            self._events.append(self._read_message(deadline))

    # -- pages -------------------------------------------------------------------------------
    def open(self, path: Path, width: int = 1280, height: int = 900) -> Page:
        """Load a local file with networking disabled and wait for its load event."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                                                       "downloadThroughput": -1,
                                                       "uploadThroughput": -1}, session)
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                        "deviceScaleFactor": 1, "mobile": False}, session)
        url = Path(path).resolve().as_uri()
        self._events.clear()
        self.send("Page.navigate", {"url": url}, session)
        self._wait_event("Page.loadEventFired", session, time.monotonic() + self.timeout)
        page = Page(self, session, PageResult(url, loaded=True), width)
        page.settle()
        return page


class Page:
    """One loaded page: its network and console record, screenshots and JS evaluation."""

    def __init__(self, browser: Browser, session: str, result: PageResult, width: int):
        self.b, self.session, self.result, self.width = browser, session, result, width

    def settle(self, quiet: float = 0.5) -> None:
        """Let late events arrive (lazy images, console messages), then file them."""
        end = time.monotonic() + quiet
        while time.monotonic() < end:
            self.b.send("Runtime.evaluate", {"expression": "1"}, self.session)
            time.sleep(0.05)
        res = self.result
        for ev in self.b._events:
            if ev.get("sessionId") != self.session:
                continue
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Network.requestWillBeSent":
                res.requests.append(p["request"]["url"])
            elif m == "Network.loadingFailed":
                res.failed.append(f"{p.get('errorText')} ({p.get('requestId')})")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                res.console_errors.append(" ".join(str(a.get("value", a.get("description")))
                                                   for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                res.console_errors.append(p["exceptionDetails"].get("text", "exception"))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                res.console_errors.append(f"{p['entry'].get('source')}: {p['entry'].get('text')} "
                                          f"{p['entry'].get('url', '')}")
        self.b._events = [e for e in self.b._events if e.get("sessionId") != self.session]

    @property
    def requests(self) -> list[str]:
        return self.result.requests

    @property
    def failed(self) -> list[str]:
        return self.result.failed

    @property
    def console_errors(self) -> list[str]:
        return self.result.console_errors

    def evaluate(self, expression: str):
        """Value of a JavaScript expression in the page."""
        r = self.b.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                        self.session)
        if "exceptionDetails" in r:
            raise CDPError(f"{expression}: {r['exceptionDetails'].get('text')}")
        return r["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True, max_height: int = 16000) -> Path:
        """Write a PNG screenshot of the page (the whole page, up to ``max_height`` px)."""
        params = {"format": "png"}
        if full_page:
            h = int(self.evaluate("document.documentElement.scrollHeight"))
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": self.width, "height": min(h, max_height),
                                "scale": 1})
        data = self.b.send("Page.captureScreenshot", params, self.session)["data"]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(base64.b64decode(data))
        self.settle(0.2)
        return Path(path)
