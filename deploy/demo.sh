#!/usr/bin/env bash
# deploy/demo.sh: the README's first command. Installs dependencies, builds crudcast and the
# bundled demo REST backend, and runs crudcast in front of it until Ctrl-C.
#   PORT (default 8080): crudcast's port; DEMO_PORT (default 3000): the demo backend's port.
set -euo pipefail
cd "$(dirname "$0")/.."

sh deploy/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build crudcast crudcast-demo-backend

PORT="${PORT:-8080}"
DEMO_PORT="${DEMO_PORT:-3000}"
./build/crudcast-demo-backend --listen "127.0.0.1:${DEMO_PORT}" &
BACKEND=$!
trap 'kill "$BACKEND" 2>/dev/null || true' EXIT

cat <<MSG

  crudcast is starting on http://127.0.0.1:${PORT} in front of the demo backend (127.0.0.1:${DEMO_PORT}).

  Try, from another terminal:
    curl -s http://127.0.0.1:${PORT}/api/authors
    curl -s -X POST http://127.0.0.1:${PORT}/api/authors -H 'Content-Type: application/json' -d '{"name":"Ada"}'
    curl -s -X PATCH http://127.0.0.1:${PORT}/api/authors/1 -H 'Content-Type: application/json' -d '{"born":1815}'
    curl -s -X DELETE -i http://127.0.0.1:${PORT}/api/authors/1

  Events (WebSocket):  ws://127.0.0.1:${PORT}/ws?topic=author   (all models: ws://127.0.0.1:${PORT}/ws)
    ./build/crudcast tail ws://127.0.0.1:${PORT}/ws --topic author    (one line per event)
    /usr/bin/python3 -m websockets ws://127.0.0.1:${PORT}/ws          (any WebSocket client)
  Events (Server-Sent Events):
    curl -N -H 'Accept: text/event-stream' 'http://127.0.0.1:${PORT}/ws?topic=author'
  Every response carries X-Crudcast-Seq; resume from it with ?since=SEQ (or --since SEQ in tail).

  Live page (requests, events, counters): http://127.0.0.1:9901/   metrics: http://127.0.0.1:9901/metrics

  One access line per request appears below. Ctrl-C stops both.

MSG
./build/crudcast --listen "0.0.0.0:${PORT}" --upstream "http://127.0.0.1:${DEMO_PORT}"
