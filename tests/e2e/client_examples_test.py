#!/usr/bin/python3
"""End-to-end: one of the client examples (examples/python, examples/node) subscribes to the author
topic of a real crudcast in front of the demo backend; writes go through crudcast; the example
must print the author events, in order, and nothing of the book written before them.

Usage: client_examples_test.py CRUDCAST_BINARY DEMO_BACKEND_BINARY EXAMPLE_COMMAND...
The example is run as EXAMPLE_COMMAND... ws://127.0.0.1:PORT/ws author, and must print
"subscribed to URL" on stderr once connected and "seq model method id payload-json" per event.
"""
import json
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.request

DEADLINE_S = 20


def lines_of(stream):
    """A queue fed with the stream's lines by a thread (None at EOF), so reads can have a deadline."""
    lines = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)
    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for(lines, pattern, what, keep=None):
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no {what} within {DEADLINE_S}s; saw {keep}") from None
        if line is None:
            raise AssertionError(f"{what}: the process ended first; saw {keep}")
        if keep is not None:
            keep.append(line)
        match = re.search(pattern, line)
        if match:
            return match


def request(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as res:
        raw = res.read()
        return res.status, (json.loads(raw) if raw else None)


def main():
    crudcast, backend, example = sys.argv[1], sys.argv[2], sys.argv[3:]
    procs = []

    def start(args, **kwargs):
        proc = subprocess.Popen(args, text=True, stdin=subprocess.DEVNULL, **kwargs)
        procs.append(proc)
        return proc

    try:
        b = start([backend, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE)
        backend_url = wait_for(lines_of(b.stdout), r"listening on (http://\S+)", "demo backend start line").group(1)
        c = start([crudcast, "--listen", "127.0.0.1:0", "--upstream", backend_url, "--admin-listen", "off"],
                  stderr=subprocess.PIPE)
        crudcast_log = []
        port = wait_for(lines_of(c.stderr), r"crudcast started.* listen=127\.0\.0\.1:(\d+)", "crudcast start line",
                        crudcast_log).group(1)
        e = start(example + [f"ws://127.0.0.1:{port}/ws", "author"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        example_err, example_out = [], lines_of(e.stdout)
        wait_for(lines_of(e.stderr), r"^subscribed to ws://", "example's subscribed line", example_err)

        base = f"http://127.0.0.1:{port}/api"
        assert request("POST", f"{base}/books", {"title": "Notes"})[0] == 201
        status, author = request("POST", f"{base}/authors", {"name": "Ada"})
        assert status == 201, status
        assert request("DELETE", f"{base}/authors/{author['id']}")[0] == 204

        printed = []
        events = []
        for _ in range(2):
            match = wait_for(example_out, r"^(\d+) (\S+) (\S+) (\S+) (.*)$", "event line", printed)
            events.append((match.group(2), match.group(3), match.group(4), json.loads(match.group(5))))
        assert events[0] == ("author", "POST", str(author["id"]), author), printed
        assert events[1] == ("author", "DELETE", str(author["id"]), None), printed
        assert int(printed[1].split()[0]) == int(printed[0].split()[0]) + 1, printed  # seq: no gap
        print("example printed:", *printed, sep="\n  ")
        print("1 passed, 0 failed")
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


if __name__ == "__main__":
    main()
