// bench/node-broadcaster/server.js: the baseline of bench/fanout.sh, "the thing a user would write
// instead" of crudcast. One Node process, the `ws` package, no upstream:
//   POST /api/authors  answers 201 with the JSON body plus an incrementing id, then broadcasts the
//                      event to every connected client with client.send(json), in the same shape
//                      crudcast sends: {"ts","model","method","id","many","payload","seq"}.
//   /ws                WebSocket endpoint; every client gets every event.
// Usage: node server.js --listen 127.0.0.1:PORT   (prints "listening on HOST:PORT" when ready)
'use strict';

const http = require('node:http');
const { WebSocketServer, WebSocket } = require('ws');

function parseListen(argv) {
  const i = argv.indexOf('--listen');
  const value = i >= 0 ? argv[i + 1] : process.env.LISTEN || '127.0.0.1:8090';
  const colon = value.lastIndexOf(':');
  const port = Number(value.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port)) {
    console.error(`node-broadcaster: --listen wants HOST:PORT, got '${value}'`);
    process.exit(1);
  }
  return { host: value.slice(0, colon), port };
}

const { host, port } = parseListen(process.argv.slice(2));
let nextId = 0;
let seq = 0;

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/api/authors') {
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end('{"error":"not found"}');
    return;
  }
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    let input;
    try {
      input = body ? JSON.parse(body) : {};
    } catch {
      res.writeHead(400, { 'Content-Type': 'application/json' });
      res.end('{"error":"invalid JSON"}');
      return;
    }
    const author = { id: ++nextId, ...input };
    res.writeHead(201, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(author));
    broadcast({ ts: Date.now(), model: 'author', method: 'POST', id: author.id, many: false, payload: author, seq: ++seq });
  });
});

const wss = new WebSocketServer({ server, path: '/ws' });  // permessage-deflate off: ws's default
wss.on('connection', (client) => {
  client.on('error', () => {});  // a subscriber that vanishes must not take the process down
});

function broadcast(event) {
  const json = JSON.stringify(event);
  for (const client of wss.clients) {
    if (client.readyState === WebSocket.OPEN) client.send(json);
  }
}

server.listen({ host, port, backlog: 4096 }, () => {
  console.log(`listening on ${host}:${server.address().port}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
