// Prints crudcast's events as they happen: one line per event.
//   npm ci && node subscribe.js                             # every model, ws://127.0.0.1:8080/ws
//   node subscribe.js ws://10.0.0.5:8080/ws author          # only author events
const WebSocket = require('ws');

const base = process.argv[2] || 'ws://127.0.0.1:8080/ws';
const topic = process.argv[3];
const url = topic ? `${base}?topic=${encodeURIComponent(topic)}` : base;

const events = new WebSocket(url);
events.on('open', () => console.error(`subscribed to ${url}`));
events.on('message', (frame) => {
  const event = JSON.parse(frame);
  console.log(event.seq, event.model, event.method, event.id, JSON.stringify(event.payload));
});
events.on('close', (code) => {
  console.error(`connection closed (${code})`);
  process.exit(code === 1000 || code === 1001 ? 0 : 1);
});
events.on('error', (error) => {
  console.error(error.message);
  process.exit(1);
});
