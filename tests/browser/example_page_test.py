#!/usr/bin/python3
"""examples/browser/index.html in headless Chromium (opened as a file, as a reader of the README
would), pointed at the real crudcast in front of the demo backend: a POST through crudcast shows
up in the page's list; an #access_token in the page's URL goes to the WebSocket URL as access_token
(what the browser opened, read from DevTools) and not onto the page.

Usage: example_page_test.py CRUDCAST_BINARY DEMO_BACKEND_BINARY EXAMPLE_HTML SCREENSHOT_DIR
Exits 77 (ctest: skipped) only when chromium is not installed.
"""
import json
import os
import pathlib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/stack.py
from cdp import Browser, ChromiumMissing, find_chromium  # noqa: E402
from stack import Stack  # noqa: E402

SKIP = 77


def main():
    crudcast, backend, example, screenshots = sys.argv[1:5]
    if not find_chromium():
        print("SKIP: chromium is not installed (apt-get install chromium); examples/browser was not tested")
        return SKIP
    with Stack(crudcast, backend, admin=False) as stack, Browser.launch() as browser:
        page = browser.new_page(width=900, height=500)
        page.navigate(pathlib.Path(example).resolve().as_uri() + f"?host=127.0.0.1&port={stack.port}&topic=author")
        page.wait_for("document.getElementById('status').textContent.startsWith('connected to ')",
                      what="the example's WebSocket to connect")
        status = page.evaluate("document.getElementById('status').textContent")
        assert status == f"connected to ws://127.0.0.1:{stack.port}/ws?topic=author", status

        _, book, _ = stack.request("POST", "/api/books", {"title": "Not an author"})
        code, author, _ = stack.request("POST", "/api/authors", {"name": "Ada Lovelace"})
        assert code == 201, code
        item = f"document.querySelector('#events li[data-model=\"author\"][data-method=\"POST\"][data-id={json.dumps(json.dumps(author['id']))}]')"
        text = page.wait_for(f"{item}?.textContent", what="the author/POST event in the example's list")
        assert '"name":"Ada Lovelace"' in text, text
        assert page.evaluate("document.querySelectorAll('#events li[data-model=\"book\"]').length") == 0, \
            "topic=author let a book event through"
        assert not page.errors, page.errors
        print("screenshot:", page.screenshot(os.path.join(screenshots, "example-page.png")))

        # crudcast's default --ws-auth none ignores the token: the page still connects.
        token = "example.token.value"
        page = browser.new_page(width=900, height=500)
        page.call("Network.enable")
        page.navigate(pathlib.Path(example).resolve().as_uri() +
                      f"?host=127.0.0.1&port={stack.port}&topic=author#access_token={token}")
        page.wait_for("document.getElementById('status').textContent.startsWith('connected to ')",
                      what="the example's WebSocket to connect with a token")
        opened = [e["url"] for e in page.events("Network.webSocketCreated")]
        assert opened == [f"ws://127.0.0.1:{stack.port}/ws?topic=author&access_token={token}"], opened
        assert token not in page.evaluate("document.body.innerText")
        assert not page.errors, page.errors
    print("examples/browser: 4 checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ChromiumMissing as e:
        print(f"SKIP: {e}")
        sys.exit(SKIP)
