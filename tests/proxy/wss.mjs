// A DDP client over wss:// through the proxy (tests/proxy/run.sh): connect, log in
// with the password digest, subscribe to user-status, set a status over DDP and see
// its event come back through the proxy. Uses `ws` from tests/clients/node.
//   node wss.mjs URL CA_FILE USERNAME PASSWORD
// The URL's host name resolves to 127.0.0.1 (the proxy picks its site by that name).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';

const require = createRequire(new URL('../clients/node/package.json', import.meta.url));
const WebSocket = require('ws');

const [url, caFile, username, password] = process.argv.slice(2);
const text = `over wss ${Date.now()}`;
const digest = createHash('sha256').update(password).digest('hex');
const fail = (why) => { console.error(`wss: ${why}`); process.exit(1); };
setTimeout(() => fail('timed out'), 15000).unref();

const lookup = (_host, opts, cb) =>
  opts && opts.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4);
const ws = new WebSocket(url, { ca: readFileSync(caFile), lookup });
const send = (frame) => ws.send(JSON.stringify(frame));
ws.on('error', (e) => fail(`websocket error: ${e.message}`));
ws.on('open', () => {
  send({ msg: 'connect', version: '1', support: ['1'] });
  send({ msg: 'method', method: 'login', id: 'login',
    params: [{ user: { username }, password: { digest, algorithm: 'sha-256' } }] });
});
let uid = null;
ws.on('message', (data) => {
  const f = JSON.parse(data.toString());
  if (f.msg === 'ping') return send({ msg: 'pong', id: f.id });
  if (f.msg === 'result' && f.id === 'login') {
    if (f.error) fail(`login: ${JSON.stringify(f.error)}`);
    uid = f.result.id;
    return send({ msg: 'sub', id: 's1', name: 'stream-notify-logged', params: ['user-status', false] });
  }
  if (f.msg === 'nosub') fail(`nosub: ${JSON.stringify(f)}`);
  if (f.msg === 'ready' && f.subs.includes('s1')) {
    return send({ msg: 'method', method: 'setUserStatus', id: 'set', params: ['busy', text] });
  }
  if (f.msg === 'result' && f.id === 'set' && f.error) fail(`setUserStatus: ${JSON.stringify(f.error)}`);
  if (f.msg === 'changed' && f.collection === 'stream-notify-logged') {
    const [id, name, code, statusText] = f.fields.args[0];
    if (id === uid && statusText === text) {
      if (name !== username || code !== 3) fail(`unexpected event ${JSON.stringify(f)}`);
      console.log(`wss: ${username} busy "${text}" came back over ${url}`);
      ws.close();
      process.exit(0);
    }
  }
});
