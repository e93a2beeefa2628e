#!/usr/bin/python3
"""End-to-end: Server-Sent Events at the ws path, read by `curl -N` (a client nobody here wrote), through the
real crudcast binary in front of the demo backend.

- `Accept: text/event-stream` on GET /ws is an SSE stream: one record per write, `id:` = the event's seq,
  `data:` = the event JSON (the same object the WebSocket sends).
- Comment heartbeats arrive every ws-ping-interval (200ms here) while nothing is written.
- `Last-Event-ID: <seq>` on the same process resumes: exactly the events after that seq, then live.
- `?since=` does the same.
- A Last-Event-ID from before this process started gets an `event: gap` record (no `id:`) with reason
  `restart`, then the retained events.
- A plain GET of /ws without that Accept still gets the 426 hint.

Usage: sse_curl_test.py CRUDCAST_BINARY DEMO_BACKEND_BINARY
"""
import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/stack.py
from stack import Stack  # noqa: E402

PING = 0.2  # --ws-ping-interval, seconds


class Curl:
    """`curl -N` on an SSE URL; its records (dicts of field -> value, plus "comments") on a queue."""

    def __init__(self, url, headers=()):
        args = ["curl", "-sS", "-N", "-H", "Accept: text/event-stream"]
        for header in headers:
            args += ["-H", header]
        self.proc = subprocess.Popen(args + [url], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        self.records, self.comments = queue.Queue(), queue.Queue()
        threading.Thread(target=self._parse, daemon=True).start()

    def _parse(self):
        record = {}
        for line in self.proc.stdout:
            line = line.rstrip("\r\n")
            if line == "":  # a blank line ends a record (SSE: dispatch)
                if record:
                    self.records.put(record)
                record = {}
            elif line.startswith(":"):
                self.comments.put(time.monotonic())
            else:
                field, _, value = line.partition(":")
                record[field] = value[1:] if value.startswith(" ") else value
        self.records.put(None)

    def next(self, timeout=10):
        try:
            record = self.records.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no SSE record in {timeout}s from {self.proc.args[-1]}") from None
        assert record is not None, f"curl ended (exit {self.proc.wait()}) before the next record"
        return record

    def event(self, timeout=10):
        """The next record, which must be an event: (seq, event JSON)."""
        record = self.next(timeout)
        assert record.get("event", "message") == "message", record
        event = json.loads(record["data"])
        assert record["id"] == str(event["seq"]), record
        return event["seq"], event

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


def quiet_heartbeats(stream, count=2):
    """Waits for `count` heartbeats written after now: a record queued before them (a duplicate, a
    stray replay) has then arrived too."""
    while not stream.comments.empty():
        stream.comments.get()
    return [stream.comments.get(timeout=10 * PING) for _ in range(count)]


def post_author(stack, name):
    status, body, headers = stack.request("POST", "/api/authors", {"name": name})
    assert status == 201, status
    return body["id"]


def check_records_and_heartbeats(stack):
    stream = Curl(f"http://127.0.0.1:{stack.port}/ws?topic=author")
    try:
        stream.comments.get(timeout=10)  # the stream is open once its first heartbeat arrives
        ids = [post_author(stack, f"sse-{n}") for n in range(3)]
        got = [stream.event() for _ in ids]
        assert [e["id"] for _, e in got] == ids, got
        assert all(e["model"] == "author" and e["method"] == "POST" for _, e in got), got
        seqs = [s for s, _ in got]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3, seqs
        # Nothing written now: only heartbeats, about one per ws-ping-interval.
        beats = quiet_heartbeats(stream, 4)
        gaps = [b - a for a, b in zip(beats, beats[1:])]
        assert all(0.25 * PING < g < 5 * PING for g in gaps), gaps  # loose: the suite also runs under ASan
        assert stream.records.empty(), stream.records.get()
        return seqs
    finally:
        stream.close()


def check_resume(stack, seqs):
    """Last-Event-ID (and ?since=) resumes on the same process: the events after it, then live."""
    since = seqs[0]
    after = [(seq, None) for seq in seqs[1:]]  # (seq, author id) of every event after `since`, in order
    after.append((None, post_author(stack, "written while nobody listened")))
    for url, headers in [(f"http://127.0.0.1:{stack.port}/ws?topic=author", [f"Last-Event-ID: {since}"]),
                         (f"http://127.0.0.1:{stack.port}/ws?topic=author&since={since}", [])]:
        stream = Curl(url, headers)
        try:
            replayed = [stream.event() for _ in after]
            assert [s for s, _ in replayed][:len(seqs) - 1] == seqs[1:], (replayed, seqs)
            assert all(want is None or e["id"] == want for (_, want), (_, e) in zip(after, replayed)), replayed
            live = post_author(stack, "live after the replay")
            seq, event = stream.event()
            assert event["id"] == live and seq > replayed[-1][0], (seq, event)
            after = [(s, e["id"]) for s, e in replayed] + [(seq, live)]
            quiet_heartbeats(stream)
            assert stream.records.empty(), stream.records.get()
        finally:
            stream.close()


def check_restart_gap(stack, before_restart):
    """A seq from before this process: an `event: gap` record without id, reason restart, then events."""
    stream = Curl(f"http://127.0.0.1:{stack.port}/ws?topic=author", [f"Last-Event-ID: {before_restart}"])
    try:
        gap = stream.next()
        assert gap.get("event") == "gap" and "id" not in gap, gap
        message = json.loads(gap["data"])
        assert message["type"] == "gap" and message["reason"] == "restart", message
        assert message["since"] == before_restart, message
        author = post_author(stack, "after the restart")
        seq, event = stream.event()
        assert event["id"] == author and seq > before_restart, (seq, event)
        assert message["next"] in (None, seq), (message, seq)  # nothing was retained yet, or exactly that one
    finally:
        stream.close()


def check_plain_get(stack):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/ws", timeout=10)
        raise AssertionError("a plain GET of /ws was answered 2xx")
    except urllib.error.HTTPError as e:
        assert e.code == 426, e.code


def main():
    crudcast, backend = sys.argv[1], sys.argv[2]
    with Stack(crudcast, backend, admin=False, extra_args=("--ws-ping-interval", f"{int(PING * 1000)}ms")) as stack:
        seqs = check_records_and_heartbeats(stack)
        check_resume(stack, seqs)
        check_plain_get(stack)
        stack.stop_crudcast()
        stack.start_crudcast()
        check_restart_gap(stack, seqs[-1])
        stack.stop_crudcast()
    print("5 passed, 0 failed")


if __name__ == "__main__":
    main()
