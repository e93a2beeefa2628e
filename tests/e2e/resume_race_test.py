#!/usr/bin/python3
"""End-to-end race: a client that loads state with a GET and subscribes with `since=<X-Crudcast-Seq>` ends
with exactly the upstream's state, while several writers change that state through crudcast the whole time.

The real crudcast binary runs in front of the bundled demo backend (one mutex, real state). Each round:
writer threads POST/PUT/PATCH/DELETE authors through crudcast (2 ms between writes); meanwhile views start one after
another, each GETs /api/authors through crudcast, reads X-Crudcast-Seq, subscribes to
/ws?topic=author&since=<that> (Python `websockets`) and applies every event idempotently (upsert by id for
POST/PUT/PATCH, delete for DELETE, ignore a seq it has already applied). When the writers stop, every view
reads on until it has applied the last write's seq (the largest X-Crudcast-Seq a writer got), then its state
must equal the backend's, read directly. Every view also checks that no seq arrives twice, that seqs
increase, and that no gap message comes.

Each writer owns the authors it creates and waits for each response before its next write, so the writes to
one author are published in the order the backend applied them; concurrent writes to one author would make
any event stream ambiguous, whatever crudcast did.

A last round is the negative control: its views pretend they subscribed with since=<header>+5 (they skip
the first five positions after the GET). Some of them must end with the wrong state, or this test could
not see a lost event. `--since-offset N` makes every view really subscribe with since=<header>+N (the
mutation check: the test must fail).

Usage: resume_race_test.py CRUDCAST_BINARY DEMO_BACKEND_BINARY [--since-offset N]
"""
import asyncio
import concurrent.futures
import http.client
import json
import os
import random
import sys
import threading
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/stack.py
from stack import Stack  # noqa: E402

WRITERS = 4
ROUNDS = 6
VIEWS_PER_ROUND = 60
VIEW_SPACING = 0.02  # seconds between two views' starts: a round writes for about 1.2 s
WRITER_PAUSE = 0.002  # keeps the Python views, not the writers, from being the bottleneck
LIVE_PER_WRITER = 12  # authors a writer keeps alive at most, so the collection stays small
READ_TIMEOUT = 20.0


def seq_of(response):
    value = response.getheader("X-Crudcast-Seq")
    assert value is not None and value.isdigit(), f"no X-Crudcast-Seq on {response.status}: {value!r}"
    return int(value)


class Writer(threading.Thread):
    """Writes its own authors through crudcast until told to stop; remembers the largest seq it was given."""

    def __init__(self, port, number, stop):
        super().__init__(daemon=True)
        self.port, self.number, self.stop = port, number, stop
        self.last_seq, self.writes, self.error = 0, 0, None
        self.live = []
        self.random = random.Random(number)

    def request(self, conn, method, path, body=None):
        data = json.dumps(body) if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        res = conn.getresponse()
        raw = res.read()
        assert 200 <= res.status < 300, f"{method} {path}: {res.status} {raw[:200]!r}"
        self.last_seq = max(self.last_seq, seq_of(res))
        self.writes += 1
        return json.loads(raw) if raw else None

    def step(self, conn):
        pick, n = self.random.random(), self.writes
        if not self.live or (pick < 0.35 and len(self.live) < LIVE_PER_WRITER):
            created = self.request(conn, "POST", "/api/authors", {"name": f"w{self.number}-{n}", "v": n})
            self.live.append(created["id"])
        elif pick < 0.65:
            target = self.random.choice(self.live)
            self.request(conn, "PUT", f"/api/authors/{target}", {"name": f"w{self.number}-{n}", "v": n})
        elif pick < 0.85:
            self.request(conn, "PATCH", f"/api/authors/{self.random.choice(self.live)}", {"v": n, "patched": True})
        else:
            target = self.live.pop(self.random.randrange(len(self.live)))
            self.request(conn, "DELETE", f"/api/authors/{target}")

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            while not self.stop.is_set():
                self.step(conn)
                time.sleep(WRITER_PAUSE)
        except BaseException as e:  # reported by the main thread
            self.error = e
        finally:
            conn.close()


def get_authors(port, through_crudcast=True):
    """GET /api/authors on `port`: (items by id, X-Crudcast-Seq, or None from the backend directly)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/api/authors")
        res = conn.getresponse()
        raw = res.read()
        assert res.status == 200, (res.status, raw[:200])
        return {item["id"]: item for item in json.loads(raw)}, (seq_of(res) if through_crudcast else None)
    finally:
        conn.close()


class View:
    """One client: GET, subscribe with since, apply events until the final seq."""

    def __init__(self, skip, ask_offset):
        self.skip = skip  # positions after the GET's seq to pretend were never asked for (the negative control)
        self.ask_offset = ask_offset  # added to the since it asks for (only the mutation check sets it)
        self.state, self.since, self.applied, self.received = {}, 0, 0, 0
        self.overlaps = 0  # events whose effect the GET had already shown: the race did happen

    def apply(self, event):
        key, method = event["id"], event["method"]
        if method == "DELETE":
            self.state.pop(key, None)
            return
        if self.state.get(key) == event["payload"]:
            self.overlaps += 1
        self.state[key] = event["payload"]

    def check(self, event, last):
        assert "type" not in event, f"gap or other message after since={self.since}: {event}"
        assert event["model"] == "author", event
        seq = event["seq"]
        assert seq > last, f"seq {seq} after {last} (since={self.since}): repeated or out of order"
        assert seq > self.since, f"seq {seq} replayed although since={self.since}"
        return seq

    async def run(self, loop, pool, port, final):
        self.state, self.since = await loop.run_in_executor(pool, get_authors, port)
        self.applied = self.since + self.skip
        url = f"ws://127.0.0.1:{port}/ws?topic=author&since={self.since + self.ask_offset}"
        async with websockets.connect(url, max_queue=None, open_timeout=10) as ws:
            receive, last = asyncio.ensure_future(ws.recv()), 0
            try:
                while not (final.done() and self.applied >= final.result()):
                    waiting = {receive} if final.done() else {receive, final}
                    done, _ = await asyncio.wait(waiting, timeout=READ_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
                    assert done, f"no event for {READ_TIMEOUT}s: applied {self.applied}, final " + \
                        (str(final.result()) if final.done() else "not yet known")
                    if receive not in done:
                        continue
                    event = json.loads(receive.result())
                    receive = asyncio.ensure_future(ws.recv())
                    last = self.check(event, last)
                    self.received += 1
                    if last > self.applied:
                        self.applied = last
                        self.apply(event)
            finally:
                receive.cancel()


async def one_round(stack, pool, skip, ask_offset=0):
    """Writers run while VIEWS_PER_ROUND views start; returns the views and the upstream's final state."""
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    writers = [Writer(stack.port, w, stop) for w in range(WRITERS)]
    for w in writers:
        w.start()
    final = loop.create_future()
    views, tasks = [], []
    try:
        for _ in range(VIEWS_PER_ROUND):
            views.append(View(skip, ask_offset))
            tasks.append(asyncio.ensure_future(views[-1].run(loop, pool, stack.port, final)))
            await asyncio.sleep(VIEW_SPACING)
    finally:
        stop.set()
        await loop.run_in_executor(pool, lambda: [w.join(15) for w in writers])
    for w in writers:
        assert w.error is None, f"writer {w.number}: {w.error!r}"
        assert w.writes > 0, f"writer {w.number} wrote nothing"
    final.set_result(max(w.last_seq for w in writers))
    await asyncio.gather(*tasks)
    upstream, _ = await loop.run_in_executor(pool, get_authors, stack.backend_port, False)
    return views, upstream, sum(w.writes for w in writers)


async def scenario(stack, since_offset):
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        total, overlaps, received, writes = 0, 0, 0, 0
        for number in range(ROUNDS):
            views, upstream, round_writes = await one_round(stack, pool, 0, since_offset)
            wrong = [v for v in views if v.state != upstream]
            assert not wrong, (f"round {number + 1}: {len(wrong)} of {len(views)} views differ from the upstream; "
                               f"first since={wrong[0].since}: missing {sorted(upstream.keys() - wrong[0].state.keys())}, "
                               f"extra {sorted(wrong[0].state.keys() - upstream.keys())}")
            total += len(views)
            overlaps += sum(v.overlaps for v in views)
            received += sum(v.received for v in views)
            writes += round_writes
        # The negative control: skipping five positions after the GET's seq must be seen.
        views, upstream, _ = await one_round(stack, pool, 5)
        wrong = sum(v.state != upstream for v in views)
        assert wrong > 0, "no view noticed five skipped positions: the comparison cannot see a lost event"
        print(f"{total} views over {ROUNDS} rounds, {writes} writes, {received} events received, "
              f"{overlaps} already in the GET's data; control: {wrong} of {len(views)} views wrong with since+5")


def main():
    crudcast, backend = sys.argv[1], sys.argv[2]
    since_offset = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--since-offset" else 0
    started = time.monotonic()
    with Stack(crudcast, backend, admin=False, extra_args=("--history-size", "100000", "--history-bytes", "256m",
                                                           "--ws-handshake-rate", "0")) as stack:
        asyncio.run(scenario(stack, since_offset))
        stack.stop_crudcast()
    print(f"1 passed, 0 failed ({time.monotonic() - started:.1f}s)")


if __name__ == "__main__":
    main()
