#!/usr/bin/python3
"""Prints crudcast's events as they happen: one line per event.

    python3 subscribe.py                                  # every model, ws://127.0.0.1:8080/ws
    python3 subscribe.py ws://10.0.0.5:8080/ws author     # only author events
    CRUDCAST_TOKEN_FILE=token.jwt python3 subscribe.py    # crudcast --ws-auth jwt (../README.md)

With CRUDCAST_TOKEN_FILE (or CRUDCAST_TOKEN) set, the token goes in the handshake as
`Authorization: Bearer ...`. When the connection ends (1008: the token expired, 1013: too slow,
1001: crudcast restarting, or lost), the subscriber reconnects with `since=<last seq printed>`, so
nothing is missed, reading the token file again: a process that renews the file keeps it going, and
an old token is refused (401), which ends it. A gap crudcast reports (events it no longer has) is
printed to stderr.

Needs the `websockets` package (Debian: apt-get install python3-websockets).
"""
import asyncio
import json
import os
import sys

import websockets

try:  # websockets 13 and later: the new client takes `additional_headers`
    from websockets.asyncio.client import connect
    HEADERS_ARGUMENT = "additional_headers"
except ImportError:  # Debian 12's websockets 10.4: the legacy client takes `extra_headers`
    from websockets import connect
    HEADERS_ARGUMENT = "extra_headers"

RESUMABLE = {1001, 1006, 1008, 1011, 1013}  # going away, lost, token expired, error, too slow


def read_token():
    """The token from the file named by CRUDCAST_TOKEN_FILE (one trailing newline removed), else
    CRUDCAST_TOKEN, else None. Never printed."""
    path = os.environ.get("CRUDCAST_TOKEN_FILE")
    if path:
        with open(path, encoding="ascii") as f:
            token = f.read()
        return token[:-1] if token.endswith("\n") else token
    return os.environ.get("CRUDCAST_TOKEN") or None


async def subscribe(url, position):
    """Prints events until the connection ends; position["last"] is the seq of the last one printed."""
    token = read_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if position["last"] is not None:
        url += ("&" if "?" in url else "?") + f"since={position['last']}"
    async with connect(url, **{HEADERS_ARGUMENT: headers}) as events:
        print(f"subscribed to {url}", file=sys.stderr, flush=True)
        async for frame in events:
            event = json.loads(frame)
            if event.get("type") == "gap":  # never an event: events have no "type"
                print(f"gap: events after {event['since']} lost ({event['reason']}); next {event['next']}",
                      file=sys.stderr, flush=True)
                continue
            position["last"] = event["seq"]
            print(event["seq"], event["model"], event["method"], event["id"], json.dumps(event["payload"]), flush=True)


async def main(url, topic):
    if topic:
        url += "?topic=" + topic
    position = {"last": None}
    while True:
        try:
            await subscribe(url, position)
            return 0
        except websockets.exceptions.InvalidHandshake as e:  # e.g. "... rejected WebSocket connection: HTTP 401"
            print(f"subscription refused: {e}", file=sys.stderr)
            return 1
        except websockets.exceptions.ConnectionClosed as e:
            code, reason = (e.rcvd.code, e.rcvd.reason) if e.rcvd else (1006, "no close frame")
            print(f"connection closed: {code} {reason}".rstrip(), file=sys.stderr, flush=True)
            if code not in RESUMABLE:
                return 1
            await asyncio.sleep(1)  # then again, token read afresh, from the last seq printed
        except OSError as e:  # crudcast not reachable (restarting): try again
            print(f"cannot connect: {e}", file=sys.stderr, flush=True)
            await asyncio.sleep(1)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8080/ws",
                              sys.argv[2] if len(sys.argv) > 2 else None)))
