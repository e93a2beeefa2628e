#!/usr/bin/python3
"""Chromium's own EventSource against crudcast's Server-Sent Events (GET /ws, Accept: text/event-stream),
with the real crudcast binary in front of the demo backend.

The page is loaded through crudcast (GET /api/authors), so the EventSource is same-origin and needs no
CORS. It receives a write as a `message` whose lastEventId is the event's seq. Then crudcast is stopped
(SIGTERM: the drain closes the stream) and started again on the same port; the EventSource reconnects by
itself, sending Last-Event-ID, and the new process answers with an `event: gap` record (reason restart,
since = the last seq the page had), then the page receives the next write. Nothing in the page threw.

Usage: sse_test.py CRUDCAST_BINARY DEMO_BACKEND_BINARY
Exits 77 (ctest: skipped) only when chromium is not installed.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/stack.py
from cdp import Browser, find_chromium  # noqa: E402
from stack import Stack  # noqa: E402

SKIP = 77

OPEN_EVENT_SOURCE = """
window.sse = {events: [], gaps: [], opens: 0, errors: 0};
window.source = new EventSource('/ws?topic=author');
source.onopen = () => { sse.opens += 1; };
source.onerror = () => { sse.errors += 1; };
source.onmessage = (e) => { sse.events.push({lastEventId: e.lastEventId, event: JSON.parse(e.data)}); };
source.addEventListener('gap', (e) => { sse.gaps.push({lastEventId: e.lastEventId, gap: JSON.parse(e.data)}); });
true
"""


def post_author(stack, name):
    status, body, _ = stack.request("POST", "/api/authors", {"name": name})
    assert status == 201, status
    return body["id"]


def main():
    crudcast, backend = sys.argv[1], sys.argv[2]
    if not find_chromium():
        print("SKIP: chromium is not installed (apt-get install chromium); EventSource was not tested")
        return SKIP
    with Stack(crudcast, backend, admin=False) as stack, Browser.launch() as browser:
        page = browser.new_page(width=800, height=600)
        page.navigate(f"http://127.0.0.1:{stack.port}/api/authors")
        page.evaluate(OPEN_EVENT_SOURCE)
        page.wait_for("sse.opens === 1", what="the EventSource to open")

        first = post_author(stack, "Ada")
        page.wait_for("sse.events.length === 1", what="the first event")
        got = page.evaluate("sse.events[0]")
        assert got["event"]["id"] == first and got["event"]["method"] == "POST", got
        assert got["lastEventId"] == str(got["event"]["seq"]), got
        last_seq = got["event"]["seq"]

        # Stop crudcast: its drain ends the stream. Start it again on the same port; the EventSource
        # retries on its own, with Last-Event-ID, and a new process cannot know that position.
        stack.stop_crudcast()
        page.wait_for("sse.errors >= 1", what="the EventSource to notice the closed stream")
        stack.start_crudcast()
        page.wait_for("sse.opens === 2 && sse.gaps.length === 1", timeout=30,
                      what="the EventSource to reconnect and receive the gap record")
        gap = page.evaluate("sse.gaps[0]")
        assert gap["gap"]["type"] == "gap" and gap["gap"]["reason"] == "restart", gap
        assert gap["gap"]["since"] == last_seq, (gap, last_seq)
        assert gap["lastEventId"] == str(last_seq), gap  # the gap record has no id: lastEventId is kept

        second = post_author(stack, "Grace")
        page.wait_for("sse.events.length === 2", what="the event after the reconnect")
        got = page.evaluate("sse.events[1]")
        assert got["event"]["id"] == second and got["event"]["seq"] > last_seq, got
        assert got["lastEventId"] == str(got["event"]["seq"]), got
        assert page.evaluate("sse.events.length") == 2 and page.evaluate("sse.gaps.length") == 1, \
            json.dumps(page.evaluate("sse"))
        assert not page.errors, page.errors
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
