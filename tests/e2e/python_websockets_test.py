#!/usr/bin/python3
"""End-to-end: a client nobody here wrote (Python `websockets`, Debian python3-websockets)
subscribes through the real crudcast binary in front of the bundled demo backend, and sees the
events of writes made through crudcast with urllib.

Usage: python_websockets_test.py CRUDCAST_BINARY DEMO_BACKEND_BINARY
"""
import asyncio
import json
import os
import sys
import urllib.request

import websockets

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/stack.py
from stack import Stack  # noqa: E402


def request(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as res:
        raw = res.read()
        return res.status, (json.loads(raw) if raw else None)


async def scenario(port):
    base = f"http://127.0.0.1:{port}/api"
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws?topic=author") as authors, \
               websockets.connect(f"ws://127.0.0.1:{port}/ws") as everything:
        loop = asyncio.get_running_loop()
        status, created = await loop.run_in_executor(None, request, "POST", f"{base}/authors", {"name": "Ada"})
        assert status == 201, status
        author_id = created["id"]
        status, _ = await loop.run_in_executor(None, request, "POST", f"{base}/books",
                                               {"title": "Notes", "author_id": author_id})
        assert status == 201, status
        status, _ = await loop.run_in_executor(None, request, "PATCH", f"{base}/authors/{author_id}", {"born": 1815})
        assert status == 200, status
        status, _ = await loop.run_in_executor(None, request, "DELETE", f"{base}/authors/{author_id}")
        assert status == 204, status

        got = [json.loads(await asyncio.wait_for(authors.recv(), 10)) for _ in range(3)]
        assert [e["method"] for e in got] == ["POST", "PATCH", "DELETE"], got
        assert all(e["model"] == "author" and e["id"] == author_id for e in got), got
        assert got[0]["payload"]["name"] == "Ada" and got[0]["many"] is False, got[0]
        assert got[2]["payload"] is None, got[2]
        assert list(got[0].keys())[:6] == ["ts", "model", "method", "id", "many", "payload"], got[0]

        every = [json.loads(await asyncio.wait_for(everything.recv(), 10)) for _ in range(4)]
        assert [e["model"] for e in every] == ["author", "book", "author", "author"], every
        seqs = [e["seq"] for e in every]
        assert seqs == list(range(seqs[0], seqs[0] + 4)), seqs


def main():
    crudcast, backend = sys.argv[1], sys.argv[2]
    with Stack(crudcast, backend, admin=False) as stack:
        asyncio.run(scenario(stack.port))
        stack.stop_crudcast()  # asserts exit code 0
        stack.crudcast.wait_for_line(r'"msg":"crudcast stopped"')  # every line before it is read
        log = [json.loads(line) for line in stack.crudcast.lines if line.startswith("{")]
        assert any(e.get("event") == "author/POST" and str(e.get("subs")) == "2" for e in log), log
        assert any(e.get("msg") == "websocket connected" for e in log), log
        assert any(e.get("msg") == "websocket disconnected" for e in log), log
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
