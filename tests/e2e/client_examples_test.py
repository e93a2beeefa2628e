#!/usr/bin/python3
"""End-to-end: one of the client examples (examples/python, examples/node) subscribes to the author
topic of a real crudcast in front of the demo backend; writes go through crudcast; the example
must print the author events, in order, and nothing of the book written before them.

Usage: client_examples_test.py CRUDCAST_BINARY DEMO_BACKEND_BINARY EXAMPLE_COMMAND...
The example is run as EXAMPLE_COMMAND... ws://127.0.0.1:PORT/ws author, and must print
"subscribed to URL" on stderr once connected and "seq model method id payload-json" per event.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/stack.py
from stack import Process, Stack  # noqa: E402

DEADLINE_S = 20


def main():
    crudcast, backend, example = sys.argv[1], sys.argv[2], sys.argv[3:]
    with Stack(crudcast, backend, admin=False) as stack:
        e = Process("example", example + [f"ws://127.0.0.1:{stack.port}/ws", "author"], stream="both")
        try:
            e.wait_for_line(r"^subscribed to ws://", DEADLINE_S)
            assert stack.request("POST", "/api/books", {"title": "Notes"})[0] == 201
            status, author, _ = stack.request("POST", "/api/authors", {"name": "Ada"})
            assert status == 201, status
            assert stack.request("DELETE", f"/api/authors/{author['id']}")[0] == 204

            events = []
            for _ in range(2):
                match = e.wait_for_line(r"^(\d+) (\S+) (\S+) (\S+) (.*)$", DEADLINE_S)
                events.append((int(match.group(1)), match.group(2), match.group(3), match.group(4),
                               json.loads(match.group(5))))
            printed = e.lines[1:]
            assert events[0][1:] == ("author", "POST", str(author["id"]), author), printed
            assert events[1][1:] == ("author", "DELETE", str(author["id"]), None), printed
            assert events[1][0] == events[0][0] + 1, printed  # seq: no gap
            print("example printed:", *printed, sep="\n  ")
            print("1 passed, 0 failed")
        finally:
            e.stop()


if __name__ == "__main__":
    main()
