// Prints crudcast's events as they happen: one line per event.
//   npm ci && node subscribe.js                             # every model, ws://127.0.0.1:8080/ws
//   node subscribe.js ws://10.0.0.5:8080/ws author          # only author events
//   CRUDCAST_TOKEN_FILE=token.jwt node subscribe.js         # crudcast --ws-auth jwt (../README.md)
// With CRUDCAST_TOKEN_FILE (or CRUDCAST_TOKEN) set, the token goes in the handshake as
// `Authorization: Bearer ...` (the `headers` option of `ws`). When the connection ends (1008: the
// token expired, 1013: too slow, 1001: crudcast restarting, or lost) it reconnects with
// `since=<last seq printed>`, so nothing is missed; the file is read again each time. A gap crudcast
// reports (events it no longer has) is printed to stderr. A refused handshake (401, 403) ends it.
const fs = require('fs');
const WebSocket = require('ws');

const base = process.argv[2] || 'ws://127.0.0.1:8080/ws';
const topic = process.argv[3];
const url = topic ? `${base}?topic=${encodeURIComponent(topic)}` : base;
const RESUMABLE = [1001, 1006, 1008, 1011, 1013];  // going away, lost, token expired, error, too slow
let last = null;  // the seq of the last event printed: where a reconnect resumes

// The token from CRUDCAST_TOKEN_FILE (one trailing newline removed), else CRUDCAST_TOKEN. Never printed.
function readToken() {
  const path = process.env.CRUDCAST_TOKEN_FILE;
  if (path) return fs.readFileSync(path, 'ascii').replace(/\r?\n$/, '');
  return process.env.CRUDCAST_TOKEN || '';
}

function subscribe() {
  const token = readToken();
  const resume = last === null ? url : `${url}${url.includes('?') ? '&' : '?'}since=${last}`;
  const events = new WebSocket(resume, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  events.on('open', () => console.error(`subscribed to ${url}`));
  events.on('message', (frame) => {
    const event = JSON.parse(frame);
    if (event.type === 'gap') {  // never an event: events have no `type`
      console.error(`gap: events after ${event.since} lost (${event.reason}); next ${event.next}`);
      return;
    }
    last = event.seq;
    console.log(event.seq, event.model, event.method, event.id, JSON.stringify(event.payload));
  });
  // A refused handshake: ws reports the status; crudcast's JSON body says why.
  events.on('unexpected-response', (request, response) => {
    let body = '';
    response.on('data', (chunk) => { body += chunk; });
    response.on('end', () => {
      let why = '';
      try {
        const parsed = JSON.parse(body);
        why = [parsed.error, parsed.detail].filter(Boolean).join(': ');
      } catch (e) { /* not crudcast's JSON: the status says enough */ }
      console.error(`subscription refused: HTTP ${response.statusCode}${why ? ' ' + why : ''}`);
      process.exit(1);
    });
  });
  events.on('close', (code, reason) => {
    console.error(`connection closed: ${code} ${reason}`.trimEnd());
    if (RESUMABLE.includes(code)) setTimeout(subscribe, 1000);  // again, token read afresh, from `last`
    else process.exit(code === 1000 || code === 1001 ? 0 : 1);
  });
  events.on('error', (error) => console.error(error.message));  // 'close' (1006) follows
}
subscribe();
