#!/usr/bin/python3
"""End-to-end: a client nobody here wrote (Python `websockets`, Debian python3-websockets)
subscribes through the real crudcast binary in front of the bundled demo backend, and sees the
events of writes made through crudcast with urllib.

Usage: python_websockets_test.py CRUDCAST_BINARY DEMO_BACKEND_BINARY
"""
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import urllib.request

import websockets


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as res:
        raw = res.read()
        return res.status, (json.loads(raw) if raw else None)


def wait_listening(port, proc, timeout=10.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)  # polling a port that has no readiness signal of its own
    raise RuntimeError(f"nothing listening on {port}")


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
    backend_port, port = free_port(), free_port()
    procs = []
    try:
        b = subprocess.Popen([backend, "--listen", f"127.0.0.1:{backend_port}"], stdout=subprocess.DEVNULL)
        procs.append(b)
        wait_listening(backend_port, b)
        c = subprocess.Popen([crudcast, "--listen", f"127.0.0.1:{port}", "--upstream",
                              f"http://127.0.0.1:{backend_port}", "--admin-listen", "off", "--threads", "2"],
                             stderr=subprocess.PIPE, text=True)
        procs.append(c)
        wait_listening(port, c)
        asyncio.run(scenario(port))
        c.terminate()
        _, log = c.communicate(timeout=15)
        assert c.returncode == 0, f"crudcast exited {c.returncode}"
        assert re.search(r"event=author/POST id=\d+ seq=\d+ subs=2", log), log
        assert "websocket connected" in log and "websocket disconnected" in log, log
        print("1 passed, 0 failed")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
