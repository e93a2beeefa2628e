#!/usr/bin/python3
"""End-to-end: a client example (examples/python, examples/node) with a token minted by
examples/mint_token.py, against a WebSocket server (python3-websockets) that records each handshake
and behaves as crudcast --ws-auth jwt does: it refuses a wrong token with 401 and a small JSON body,
and closes a subscription whose token expired with 1008 "token expired".

Checked: the handshake carries `Authorization: Bearer <the file's token>` and the topic; an event is
printed; on the 1008 close the example says so, reads the renewed token file and reconnects with the
new token; a wrong token ends the example with status 1 and "subscription refused ... 401"; the token
never appears in the example's output.

Usage: client_token_test.py EXAMPLE_COMMAND...
The example is run as EXAMPLE_COMMAND... ws://127.0.0.1:PORT/ws author, with CRUDCAST_TOKEN_FILE set.
"""
import asyncio
import base64
import http
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading

import websockets
import websockets.legacy.server

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/stack.py
from stack import Process  # noqa: E402

DEADLINE_S = 20
MINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "mint_token.py")


def mint(secret_file, subject):
    return subprocess.run(["/usr/bin/python3", MINT, secret_file, "--topics", "author", "--sub", subject],
                          check=True, capture_output=True, text=True).stdout


def event(seq, id_, payload):
    return json.dumps({"ts": 1795813926587, "model": "author", "method": "POST", "id": id_, "many": False,
                       "payload": payload, "seq": seq})


class TokenServer:
    """Accepts the handshake whose token is in `self.accept` (a list, consumed in order); answers any
    other with 401. Each accepted connection gets one event, then runs `after_event(n)` and closes
    with what it returns: (code, reason)."""

    def __init__(self, after_event):
        self.handshakes = []  # (path, Authorization header) per handshake, in order
        self.accept = []
        self._after_event = after_event
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready):
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(websockets.legacy.server.serve(
            self._serve, "127.0.0.1", 0, process_request=self._check))
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    async def _check(self, path, headers):
        authorization = headers.get("Authorization", "")
        self.handshakes.append((path, authorization))
        if self.accept and authorization == "Bearer " + self.accept[0]:
            self.accept.pop(0)
            return None  # go on with the upgrade
        body = json.dumps({"error": "invalid_token", "detail": "signature does not verify"}).encode()
        return http.HTTPStatus.UNAUTHORIZED, [("Content-Type", "application/json")], body

    async def _serve(self, ws, path):
        n = len(self.handshakes)
        await ws.send(event(n, n, {"id": n, "name": f"Author {n}"}))
        code, reason = self._after_event(n)
        await ws.close(code, reason)

    def close(self):
        self._loop.call_soon_threadsafe(self._server.close)


def main():
    example = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        secret_file = os.path.join(tmp, "jwt.secret")
        with open(secret_file, "w") as f:
            f.write(base64.b64encode(secrets.token_bytes(48)).decode() + "\n")
        token_file = os.path.join(tmp, "token.jwt")
        first, second = mint(secret_file, "first"), mint(secret_file, "second")
        assert first != second and first.count(".") == 2, first
        with open(token_file, "w") as f:
            f.write(first)

        def after_event(n):
            if n == 1:  # renewed before the close, so the reconnect can only read the new token
                with open(token_file, "w") as f:
                    f.write(second)
                return 1008, "token expired"
            return 1000, ""

        server = TokenServer(after_event)
        server.accept = [first.strip(), second.strip()]
        url = f"ws://127.0.0.1:{server.port}/ws"
        os.environ["CRUDCAST_TOKEN_FILE"] = token_file
        e = Process("example", example + [url, "author"], stream="both")
        try:
            e.wait_for_line(r"^subscribed to ws://", DEADLINE_S)
            e.wait_for_line(r"^1 author POST 1 \{", DEADLINE_S)
            e.wait_for_line(r"^connection closed: 1008 token expired$", DEADLINE_S)
            e.wait_for_line(r"^subscribed to ws://", DEADLINE_S)
            e.wait_for_line(r"^2 author POST 2 \{", DEADLINE_S)
            assert e.proc.wait(DEADLINE_S) == 0, e.lines
        finally:
            e.stop()
        assert server.handshakes == [("/ws?topic=author", "Bearer " + first.strip()),
                                     # the reconnect resumes after the last event printed
                                     ("/ws?topic=author&since=1", "Bearer " + second.strip())], server.handshakes
        printed = list(e.lines)

        # A token the server does not take: one refusal, status 1, no retry.
        unknown = mint(secret_file, "unknown")
        with open(token_file, "w") as f:
            f.write(unknown)
        refused = Process("example", example + [url, "author"], stream="both")
        try:
            refused.wait_for_line(r"^subscription refused: .*401", DEADLINE_S)
            assert refused.proc.wait(DEADLINE_S) == 1, refused.lines
        finally:
            refused.stop()
        assert len(server.handshakes) == 3, server.handshakes
        printed += refused.lines
        server.close()
        for token in (first, second, unknown):
            assert not any(token.strip() in line for line in printed), "the example printed its token"
        print("example printed:", *printed, sep="\n  ")
        print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
