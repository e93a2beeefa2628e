#!/usr/bin/python3
"""The admin live page (GET / on the admin listener) in headless Chromium, against the real
crudcast binary in front of the demo backend: the page connects its events WebSocket, a POST made
through crudcast shows up as an event, as a row of the requests table and in the counters; the
topic filter resubscribes; the page reconnects after crudcast restarts and says that events were
lost (a gap); after a network blip it resumes with since= and shows what was published meanwhile,
each event once; event data is rendered as text, never as HTML; an access_token in the page's URL (fragment or query) reaches the events socket's
URL as access_token, and never the screen. Saves a screenshot.

Usage: live_page_test.py CRUDCAST_BINARY DEMO_BACKEND_BINARY SCREENSHOT_DIR
Exits 77 (ctest: skipped) only when chromium is not installed.
"""
import json
import os
import select
import socket
import sys
import tempfile
import threading
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/stack.py
from cdp import Browser, ChromiumMissing, find_chromium  # noqa: E402
from stack import Stack  # noqa: E402

SKIP = 77


def js(value):
    """A Python value as a JavaScript literal."""
    return json.dumps(value)


def event_row(model, method, id_):
    return (f"[...document.querySelectorAll('#events tr')].some(tr => tr.dataset.model === {js(model)} && "
            f"tr.dataset.method === {js(method)} && tr.dataset.id === {js(str(id_))})")


def stat(key):
    return f"Number(document.getElementById('stat-{key}').dataset.value ?? -1)"


def ws_state():
    return "document.getElementById('ws-status').dataset.state"


class Relay:
    """A TCP relay in front of crudcast's proxy port: cut() ends every relayed connection, as a
    network blip would, and turns new ones away until resume(); crudcast keeps running meanwhile."""

    def __init__(self, target_port):
        self._target = target_port
        self._lock = threading.Lock()
        self._live = []
        self._refusing = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._refusing:
                    client.close()
                    continue
                upstream = socket.create_connection(("127.0.0.1", self._target))
                self._live += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                for ready in select.select([a, b], [], [])[0]:
                    data = ready.recv(65536)
                    if not data:
                        return
                    (b if ready is a else a).sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                for s in (a, b):
                    if s in self._live:
                        self._live.remove(s)
                    s.close()

    def cut(self):
        with self._lock:
            self._refusing = True
            for s in self._live:
                s.shutdown(socket.SHUT_RDWR)

    def resume(self):
        with self._lock:
            self._refusing = False

    def close(self):
        self.cut()
        self._listener.close()


def ws_opened(page):
    """The URLs of the WebSockets the page opened, from DevTools (Network enabled)."""
    return [e["url"] for e in page.events("Network.webSocketCreated")]


def check_resume(browser, stack):
    """Through a relay that drops the page's events socket: the page reconnects with since= the last
    event it showed, and shows the events published while it was away, each once, and no gap."""
    relay = Relay(stack.port)
    try:
        page = browser.new_page(width=1000, height=700)
        page.call("Network.enable")
        page.navigate(f"http://127.0.0.1:{stack.admin_port}/?ws=ws://127.0.0.1:{relay.port}/ws")
        page.wait_for(f"{ws_state()} === 'connected'", what="the events WebSocket through the relay")
        _, first, _ = stack.request("POST", "/api/authors", {"name": "Before The Blip"})
        page.wait_for(event_row("author", "POST", first["id"]), what="the event before the blip")
        seq = page.evaluate("document.querySelector('#events tr td:nth-child(5)').textContent")
        assert seq.isdigit(), seq
        relay.cut()
        page.wait_for(f"{ws_state()} === 'disconnected'", what="the page to notice the blip")
        missed = [stack.request("POST", "/api/authors", {"name": f"During The Blip {i}"})[1] for i in range(3)]
        relay.resume()
        for author in missed:
            page.wait_for(event_row("author", "POST", author["id"]), timeout=20, what="an event from the blip")
        opened = ws_opened(page)
        assert opened[0] == f"ws://127.0.0.1:{relay.port}/ws", opened
        assert opened[-1] == f"ws://127.0.0.1:{relay.port}/ws?since={seq}", (seq, opened)
        rows = page.evaluate("[...document.querySelectorAll('#events tr')].map(tr => tr.dataset.id)")
        ids = [str(a["id"]) for a in reversed(missed)] + [str(first["id"])]
        assert rows == ids, (rows, ids)  # newest first, each once, nothing between
        assert page.evaluate("document.getElementById('events-gap').hidden"), "a gap was shown for a blip"
        assert not page.errors, page.errors
    finally:
        relay.close()
    return 1


def check_access_token(browser, stack):
    """The page hands an access_token from its URL to the events socket (crudcast --ws-auth jwt takes
    it there; with the default none it is ignored, so the page still connects); the fragment wins over
    the query; the URL on screen shows REDACTED. What the browser opened is read from DevTools."""
    checks = 0
    cases = [("/#access_token=fragment.token.value", "", "fragment.token.value"),
             ("/?topic=book&access_token=query.token.value", "topic=book&", "query.token.value"),
             ("/?access_token=query.token.value#access_token=fragment.token.value", "", "fragment.token.value")]
    for path, topic, token in cases:
        page = browser.new_page(width=1000, height=700)
        page.call("Network.enable")
        page.navigate(f"http://127.0.0.1:{stack.admin_port}{path}")
        page.wait_for(f"{ws_state()} === 'connected'", what=f"the events WebSocket of {path} to connect")
        opened = [e["url"] for e in page.events("Network.webSocketCreated")]
        assert opened == [f"ws://127.0.0.1:{stack.port}/ws?{topic}access_token={token}"], (path, opened)
        shown = page.evaluate("document.getElementById('ws-url').textContent")
        assert shown == f"ws://127.0.0.1:{stack.port}/ws?{topic}access_token=REDACTED", (path, shown)
        assert token not in page.evaluate("document.body.innerText"), path
        assert not page.errors, page.errors
        checks += 1
    return checks


def main():
    crudcast, backend, screenshots = sys.argv[1], sys.argv[2], sys.argv[3]
    if not find_chromium():
        print("SKIP: chromium is not installed (apt-get install chromium); the live page was not tested in a browser")
        return SKIP
    checks = 0
    with Stack(crudcast, backend) as stack, Browser.launch() as browser:
        page = browser.new_page(width=1440, height=900)
        page.navigate(f"http://127.0.0.1:{stack.admin_port}/")
        page.wait_for(f"{ws_state()} === 'connected'", what="the page's events WebSocket to connect")
        url = page.evaluate("document.getElementById('ws-url').textContent")
        assert url == f"ws://127.0.0.1:{stack.port}/ws", url
        page.wait_for(f"{stat('requests_total')} >= 0", what="the first /api/stats poll")
        requests_before = page.evaluate(stat("requests_total"))
        events_before = page.evaluate(stat("events_published"))
        checks += 1

        # A write through crudcast: an event, a request row, counters moving.
        status, author, headers = stack.request("POST", "/api/authors", {"name": "Grace Hopper"})
        assert status == 201, status
        rid = headers["X-Request-ID"]
        page.wait_for(event_row("author", "POST", author["id"]), what="the author/POST event in the live list")
        checks += 1
        row = page.wait_for(
            f"(() => {{ const tr = document.querySelector('#requests tr[data-rid={js(rid)}]');"
            f" return tr && [...tr.cells].map(td => td.textContent); }})()",
            what=f"the request row of rid {rid}")
        assert row[1:4] == ["POST", "/api/authors", "201"], row
        assert row[5].startswith(f"author/POST id={author['id']} seq="), row
        checks += 1
        page.wait_for(f"{stat('requests_total')} > {requests_before} && {stat('events_published')} > {events_before}",
                      what="the requests and events counters to move")
        checks += 1

        # Payloads are untrusted: markup in them stays text.
        status, evil, _ = stack.request("POST", "/api/authors", {"name": "<img src=x onerror=\"window.pwned=1\">"})
        assert status == 201, status
        page.wait_for(event_row("author", "POST", evil["id"]), what="the event with markup in its payload")
        assert page.evaluate("document.querySelector('#events img, #requests img') === null"), "markup was rendered"
        assert page.evaluate("window.pwned === undefined"), "payload script ran"
        assert "<img src=x" in page.evaluate("document.getElementById('events').textContent")
        checks += 1

        # The topic filter resubscribes: with topic "book", author events no longer arrive.
        page.evaluate("document.getElementById('topic').value = 'book';"
                      "document.getElementById('topic-form').requestSubmit(); true")
        page.wait_for(f"{ws_state()} === 'connected' && document.getElementById('ws-url').textContent.endsWith("
                      f"'?topic=book')", what="the resubscription with topic=book")
        _, hidden, _ = stack.request("POST", "/api/authors", {"name": "Not Shown"})
        _, book, _ = stack.request("POST", "/api/books", {"title": "Compilers", "author_id": author["id"]})
        page.wait_for(event_row("book", "POST", book["id"]), what="the book event under topic=book")
        assert not page.evaluate(event_row("author", "POST", hidden["id"])), "an author event passed topic=book"
        assert page.evaluate("new URL(location.href).searchParams.get('topic')") == "book"
        checks += 1

        # Back to every topic; crudcast restarts on the same ports and the page reconnects by itself.
        # It resumes after the last event it showed, which is from before the restart: crudcast says
        # those positions are lost (a gap, reason restart), and the page says so, not as an event row.
        page.evaluate("document.getElementById('topic').value = '';"
                      "document.getElementById('topic-form').requestSubmit(); true")
        page.wait_for(f"{ws_state()} === 'connected' && !document.getElementById('ws-url').textContent.includes('?')",
                      what="the resubscription to every topic")
        _, last, _ = stack.request("POST", "/api/books", {"title": "Before The Restart", "author_id": author["id"]})
        page.wait_for(event_row("book", "POST", last["id"]), what="an event before the restart")
        rows_before = page.evaluate("document.querySelectorAll('#events tr').length")
        stack.stop_crudcast()
        page.wait_for(f"{ws_state()} === 'disconnected'", what="the page to notice crudcast went away")
        stack.start_crudcast()
        page.wait_for(f"{ws_state()} === 'connected'", timeout=20, what="the page to reconnect")
        gap = page.wait_for("(() => { const n = document.getElementById('events-gap');"
                            " return !n.hidden && n.textContent; })()", what="the gap notice after the restart")
        assert gap.startswith("gap: events after ") and "lost (restart); none retained yet" in gap, gap
        assert page.evaluate("document.querySelectorAll('#events tr').length") == rows_before, "the gap became a row"
        checks += 1

        # Some ordinary traffic for the screenshot: reads, a 404, an update, a delete.
        stack.request("GET", "/api/authors")
        try:
            stack.request("PATCH", "/api/authors/999999", {"born": 1906})
        except urllib.error.HTTPError as e:
            assert e.code == 404, e.code
        _, grace, _ = stack.request("POST", "/api/authors", {"name": "Grace Hopper", "born": 1906})
        stack.request("PATCH", f"/api/authors/{grace['id']}", {"born": 1906, "navy": True})
        stack.request("POST", "/api/books", {"title": "A Manual of Operation", "author_id": grace["id"]})
        stack.request("DELETE", f"/api/authors/{evil['id']}")
        page.wait_for(event_row("author", "DELETE", evil["id"]), what="the DELETE event")
        page.wait_for("document.querySelectorAll('#requests tr').length >= 6", what="the requests table to fill")
        page.wait_for(f"document.getElementById('stat-bad_gateway') && {stat('requests_total')} >= 6",
                      what="the counters to catch up")
        assert page.evaluate("getComputedStyle(document.body).fontSize") == "14px"
        assert not page.errors, page.errors
        checks += 1

        # The screenshot once the "just changed" highlights have faded.
        page.wait_for("document.getAnimations().length === 0", what="the highlight animations to settle")
        path = page.screenshot(os.path.join(screenshots, "live-page.png"))
        print(f"screenshot: {path}")

        checks += check_access_token(browser, stack)
        checks += check_resume(browser, stack)
    # With admin-token-file the page takes the token from its own URL's fragment, sends it to the
    # /api paths as a header and takes it out of the address bar.
    token = "page-t0ken-" + os.urandom(8).hex()
    with tempfile.TemporaryDirectory() as tmp:
        token_file = os.path.join(tmp, "admin-token")
        with open(token_file, "w") as f:
            f.write(token + "\n")
        with Stack(crudcast, backend, extra_args=("--admin-token-file", token_file)) as stack, \
                Browser.launch() as browser:
            page = browser.new_page(width=1024, height=700)
            page.navigate(f"http://127.0.0.1:{stack.admin_port}/#token={token}")
            page.wait_for(f"{stat('requests_total')} >= 0", what="the first /api/stats poll with the token")
            page.wait_for(f"{ws_state()} === 'connected'", what="the events WebSocket, after /api/info with the token")
            assert token not in page.evaluate("location.href"), "the token stayed in the address bar"
            assert not page.errors, page.errors
            checks += 1
    print(f"live page: {checks} checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ChromiumMissing as e:
        print(f"SKIP: {e}")
        sys.exit(SKIP)
