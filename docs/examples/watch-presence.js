// Watches every user's status live over statusd's websocket (DDP), as a dashboard
// should: one connection and pushed events, no polling (REST reads are rate limited).
// After each (re)connect it reads the current statuses once (users.presence), then
// applies the events. Answers the server's pings, prints login and subscription
// errors, reconnects with a back-off. Node 18 or newer:
//   npm install ws
//   STATUSD_URL=wss://status.example.org/websocket STATUSD_USER=dashboard \
//     STATUSD_PASS=… node watch-presence.js
const WebSocket = require('ws');
const crypto = require('crypto');

const url = process.env.STATUSD_URL || 'ws://localhost:3000/websocket';
const username = process.env.STATUSD_USER || 'admin';
const digest = crypto.createHash('sha256').update(process.env.STATUSD_PASS || '').digest('hex');
const httpBase = url.replace(/^ws/, 'http').replace(/\/websocket$/, '');
const CODES = ['offline', 'online', 'away', 'busy'];
let delay = 1000;

// The statuses as they are now; events after this keep them current.
async function snapshot(userId, token) {
  const r = await fetch(`${httpBase}/api/v1/users.presence`, {
    headers: { 'X-User-Id': userId, 'X-Auth-Token': token },
  });
  const body = await r.json();
  if (!body.success) throw new Error(body.error || `HTTP ${r.status}`);
  for (const u of body.users) {
    console.log(`${u.username} is ${u.status}${u.statusText ? `: ${u.statusText}` : ''}`);
  }
}

function connect() {
  const ws = new WebSocket(url);
  const send = (frame) => ws.send(JSON.stringify(frame));
  ws.on('open', () => {
    send({ msg: 'connect', version: '1', support: ['1'] });
    send({ msg: 'method', method: 'login', id: 'login',
      params: [{ user: { username }, password: { digest, algorithm: 'sha-256' } }] });
  });
  ws.on('message', (data) => {
    const f = JSON.parse(data);
    if (f.msg === 'ping') {
      send({ msg: 'pong', id: f.id });
    } else if (f.msg === 'result' && f.id === 'login') {
      if (f.error) {
        // Retrying a wrong password only gets the account blocked: stop.
        console.error(`login failed: ${f.error.reason || f.error.message}`);
        process.exit(1);
      }
      delay = 1000;
      console.log(`logged in as ${username}`);
      send({ msg: 'sub', id: 'status', name: 'stream-notify-logged', params: ['user-status', false] });
      snapshot(f.result.id, f.result.token).catch((e) => console.error(`users.presence: ${e.message}`));
    } else if (f.msg === 'nosub') {
      console.error(`subscription refused: ${JSON.stringify(f.error || f)}`);
    } else if (f.msg === 'ready') {
      console.log('watching every status change');
    } else if (f.msg === 'changed' && f.fields && f.fields.eventName === 'user-status') {
      const [uid, user, code, text] = f.fields.args[0];
      console.log(`${user} (${uid}) is ${CODES[code] ?? code}${text ? `: ${text}` : ''}`);
    }
  });
  ws.on('error', (e) => console.error(`websocket error: ${e.message}`));
  ws.on('close', () => {
    console.error(`disconnected; reconnecting in ${delay / 1000} s`);
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 30000);
  });
}

connect();
