"""cdp.py: a small Chrome DevTools Protocol driver for headless Chromium, for crudcast's browser
tests (tests/browser/) and the examples/browser test. Standard library plus Debian's
python3-websockets (10.x: asyncio only, so the protocol runs on a private event loop thread and
this module's API is synchronous).

    with Browser.launch() as browser:          # raises ChromiumMissing when there is no chromium
        page = browser.new_page(width=1400, height=900)
        page.navigate("http://127.0.0.1:9901/")
        page.wait_for("document.querySelector('#ws-status').dataset.state === 'connected'")
        page.screenshot("live-page.png")
        assert not page.errors                 # uncaught exceptions and console.error()s

Waits poll the page with a deadline (a condition in the page, not a fixed sleep).
"""
import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

import websockets

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--remote-debugging-port=0"]


class ChromiumMissing(Exception):
    pass


class CdpError(Exception):
    pass


def find_chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _Connection:
    """One DevTools WebSocket, served by an event loop on its own thread."""

    def __init__(self, url, timeout):
        self.timeout = timeout
        self.events = []           # (method, params) in arrival order
        self._listeners = []       # callables(method, params), run on the loop thread
        self._ids = itertools.count(1)
        self._pending = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="cdp")
        self._thread.start()
        self._ws = self._run(self._connect(url))
        self._reader = asyncio.run_coroutine_threadsafe(self._read(), self._loop)

    @staticmethod
    async def _connect(url):
        return await websockets.connect(url, max_size=None, ping_interval=None)

    def _run(self, coro, timeout=None):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout or self.timeout)

    async def _read(self):
        try:
            async for raw in self._ws:
                message = json.loads(raw)
                if "id" in message:
                    future = self._pending.pop(message["id"], None)
                    if future and not future.done():
                        future.set_result(message)
                else:
                    self.events.append((message.get("method"), message.get("params", {})))
                    for listener in self._listeners:
                        listener(message.get("method"), message.get("params", {}))
        except websockets.ConnectionClosed:
            pass
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CdpError("DevTools connection closed"))

    async def _call(self, method, params):
        message_id = next(self._ids)
        future = self._loop.create_future()
        self._pending[message_id] = future
        await self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        return await future

    def call(self, method, timeout=None, **params):
        reply = self._run(self._call(method, params), timeout)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message')} {reply['error'].get('data', '')}".strip())
        return reply.get("result", {})

    def listen(self, listener):
        self._loop.call_soon_threadsafe(self._listeners.append, listener)

    def close(self):
        try:
            self._run(self._ws.close(), 5)
        except Exception:  # the browser may already be gone
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class Page:
    """One tab. `errors` collects uncaught exceptions and console.error() calls, as text."""

    def __init__(self, connection):
        self._c = connection
        self.errors = []
        self.console = []
        self._c.listen(self._on_event)
        self._c.call("Page.enable")
        self._c.call("Runtime.enable")

    def _on_event(self, method, params):
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "exception")
            self.errors.append(text)
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append(f"{params.get('type')}: {text}")
            if params.get("type") == "error":
                self.errors.append("console.error: " + text)

    def call(self, method, **params):
        return self._c.call(method, **params)

    def events(self, method):
        """The params of every DevTools event `method` so far, in order (enable its domain first)."""
        return [params for name, params in list(self._c.events) if name == method]

    def set_viewport(self, width, height):
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def navigate(self, url, timeout=None):
        """Loads `url` and waits until the document has loaded (readyState complete)."""
        result = self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise CdpError(f"navigate {url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'",
                      timeout=timeout, what=f"{url} to load")

    def evaluate(self, expression):
        """The value of a JavaScript expression (promises are awaited); page exceptions raise."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CdpError(f"{expression!r} threw: "
                           f"{details.get('exception', {}).get('description') or details.get('text')}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression, timeout=None, what=None, interval=0.05):
        """Polls `expression` until it is truthy and returns its value; raises TimeoutError after
        `timeout` seconds naming `what` and the last value seen."""
        deadline = time.monotonic() + (timeout or self._c.timeout)
        value = None
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"waited {timeout or self._c.timeout}s for {what or expression}; "
                                   f"last value {value!r}; page errors {self.errors}")
            time.sleep(interval)  # polling the page: it has no way to call us back

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path


class Browser:
    """A headless Chromium process with its own throw-away profile."""

    def __init__(self, process, profile, port, timeout):
        self.process = process
        self.profile = profile
        self.port = port
        self.timeout = timeout
        self._connections = []

    @classmethod
    def launch(cls, chromium=None, timeout=30.0, extra_flags=()):
        chromium = chromium or find_chromium()
        if not chromium:
            raise ChromiumMissing("chromium is not installed (Debian package chromium)")
        profile = tempfile.mkdtemp(prefix="crudcast-chromium-")
        log = open(os.path.join(profile, "chromium.log"), "wb")
        process = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra_flags,
                                    "about:blank"],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        browser = cls(process, profile, None, timeout)
        try:
            browser.port = browser._devtools_port()
        except Exception:
            browser.close()
            raise
        return browser

    def _devtools_port(self):
        # Chromium writes the port it picked (for --remote-debugging-port=0) into this file.
        path = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CdpError(f"chromium exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with open(path) as f:
                    first = f.readline().strip()
                if first:
                    return int(first)
            except FileNotFoundError:
                pass
            time.sleep(0.05)  # chromium has no other way to say it is ready
        raise CdpError(f"no {path} after {self.timeout}s: {self.log_tail()}")

    def log_tail(self, lines=20):
        try:
            with open(os.path.join(self.profile, "chromium.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def new_page(self, width=1400, height=900):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=self.timeout) as res:
            target = json.load(res)
        connection = _Connection(target["webSocketDebuggerUrl"], self.timeout)
        self._connections.append(connection)
        page = Page(connection)
        page.set_viewport(width, height)
        return page

    def close(self):
        for connection in self._connections:
            connection.close()
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)  # its own session: chromium and its helpers
                self.process.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
