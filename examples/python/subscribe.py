#!/usr/bin/python3
"""Prints crudcast's events as they happen: one line per event.

    python3 subscribe.py                                  # every model, ws://127.0.0.1:8080/ws
    python3 subscribe.py ws://10.0.0.5:8080/ws author     # only author events

Needs the `websockets` package (Debian: apt-get install python3-websockets).
"""
import asyncio
import json
import sys

import websockets


async def main(url, topic):
    if topic:
        url += "?topic=" + topic
    async with websockets.connect(url) as events:
        print(f"subscribed to {url}", file=sys.stderr, flush=True)
        async for frame in events:
            event = json.loads(frame)
            print(event["seq"], event["model"], event["method"], event["id"], json.dumps(event["payload"]), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8080/ws",
                     sys.argv[2] if len(sys.argv) > 2 else None))
