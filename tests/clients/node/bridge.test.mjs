// The REST bridge to the DDP methods, driven the way the Rocket.Chat mobile app drives
// it when the public setting API_Use_REST_For_DDP_Calls is on (its
// app/lib/services/sdk.ts `methodCallWrapper` and `post`): each method is a POST to
// `method.callAnon/<name>` before login and `method.call/<name>` after, with the body
// `{message: EJSON.stringify({msg: 'method', id, method, params})}` (the `ejson` package
// the app uses) and the X-User-Id / X-Auth-Token headers; the answer's `message` is
// EJSON-parsed and its `error`, if any, thrown. A websocket client
// (@rocket.chat/ddp-client) watches the status the bridge sets.
//
// Run by tests/clients/run.sh, which starts a fresh server and passes
//   STATUSD_URL, STATUSD_ADMIN_USER, STATUSD_ADMIN_PASS.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';

import EJSON from 'ejson';
import WebSocket from 'ws';
import { DDPSDK } from '@rocket.chat/ddp-client';

globalThis.WebSocket ??= WebSocket;

const URL = (process.env.STATUSD_URL ?? 'http://127.0.0.1:3000').replace(/\/+$/, '');
const ADMIN_USER = process.env.STATUSD_ADMIN_USER ?? 'admin';
const ADMIN_PASS = process.env.STATUSD_ADMIN_PASS ?? '';
const TIMEOUT_MS = 5000;

const sha256 = (text) => createHash('sha256').update(text).digest('hex');
const random = (n) => randomBytes(n).toString('hex').slice(0, n);

function withTimeout(promise, what, ms = TIMEOUT_MS) {
	let timer;
	return Promise.race([
		promise,
		new Promise((_, reject) => {
			timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
		}),
	]).finally(() => clearTimeout(timer));
}

/** The app's REST client: JSON in, JSON out, credentials in headers once logged in. */
async function rest(method, endpoint, body, creds) {
	const headers = { 'Content-Type': 'application/json' };
	if (creds) {
		headers['X-User-Id'] = creds.userId;
		headers['X-Auth-Token'] = creds.authToken;
	}
	const res = await fetch(`${URL}/api/v1/${endpoint}`, {
		method,
		headers,
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	const json = await res.json();
	if (!res.ok) {
		throw Object.assign(new Error(`${method} ${endpoint} -> ${res.status} ${JSON.stringify(json)}`), { status: res.status, body: json });
	}
	return json;
}

/** sdk.methodCallWrapper with API_Use_REST_For_DDP_Calls on. */
async function methodCallWrapper(creds, method, ...params) {
	const url = creds ? 'method.call' : 'method.callAnon';
	const result = await rest('POST', `${url}/${method}`, {
		message: EJSON.stringify({ msg: 'method', id: random(10), method, params }),
	}, creds);
	// The app unwraps `method.call/` answers (sdk.post); a `method.callAnon/` answer
	// it hands back as is, so unwrap it here the same way.
	assert.deepEqual(Object.keys(result).sort(), ['message', 'success']);
	assert.equal(result.success, true);
	const response = EJSON.parse(result.message);
	assert.equal(response.msg, 'result');
	if (response.error) {
		throw response.error;
	}
	return response.result;
}

let creds; // the logged-in user's { userId, authToken }
let watcher; // a websocket client watching user-status
const events = [];
const username = `bridge-${random(6)}`;
const password = `pw-${random(12)}`;
const customName = `Bridging ${random(6)}`;

before(async () => {
	watcher = DDPSDK.create(URL);
	await withTimeout(watcher.connection.connect(), 'DDP connect');
	await withTimeout(watcher.account.loginWithPassword(ADMIN_USER, sha256(ADMIN_PASS)), 'DDP login');
	const sub = watcher.stream('notify-logged', 'user-status', (args) => events.push(args));
	await withTimeout(sub.ready(), 'user-status ready');
	const admin = { userId: watcher.account.uid, authToken: watcher.account.user.token };
	await rest('POST', 'users.create', {
		username,
		password,
		name: 'Bridge User',
		email: `${username}@example.com`,
	}, admin);
	await rest('POST', 'custom-user-status.create', { name: customName, statusType: 'busy' }, admin);
});

after(() => {
	watcher?.connection.close();
	watcher?.timeoutControl.stop();
});

test('the app learns from the public settings that it may use REST for DDP calls', async () => {
	const { settings } = await rest('GET', 'settings.public?_id=API_Use_REST_For_DDP_Calls');
	assert.deepEqual(settings, [{ _id: 'API_Use_REST_For_DDP_Calls', value: true }]);
});

test('login through method.callAnon', async () => {
	const result = await withTimeout(
		methodCallWrapper(undefined, 'login', {
			user: { username },
			password: { digest: sha256(password), algorithm: 'sha-256' },
		}),
		'login',
	);
	assert.equal(result.type, 'password');
	assert.equal(typeof result.id, 'string');
	assert.equal(typeof result.token, 'string');
	// EJSON brings the expiry back as a Date.
	assert.ok(result.tokenExpires instanceof Date);
	assert.ok(result.tokenExpires.getTime() > Date.now());
	creds = { userId: result.id, authToken: result.token };
	const me = await rest('GET', 'me', undefined, creds);
	assert.equal(me.username, username);
});

test('license:getModules before anything else', async () => {
	assert.deepEqual(await methodCallWrapper(creds, 'license:getModules'), []);
});

test('setUserStatus through method.call reaches a websocket client', async () => {
	const from = events.length;
	const result = await methodCallWrapper(creds, 'setUserStatus', 'busy', 'on the bridge');
	assert.equal(result, undefined);
	const deadline = Date.now() + TIMEOUT_MS;
	let seen;
	while (!seen && Date.now() < deadline) {
		seen = events.slice(from).find((a) => a[0] === creds.userId);
		if (!seen) {
			await new Promise((r) => setTimeout(r, 50));
		}
	}
	assert.ok(seen, `no user-status event for ${creds.userId}: ${JSON.stringify(events.slice(from))}`);
	assert.deepEqual(seen.slice(0, 4), [creds.userId, username, 3, 'on the bridge']);
	const status = await rest('GET', `users.getStatus?userId=${creds.userId}`, undefined, creds);
	assert.equal(status.status, 'busy');
});

test('listCustomUserStatus through method.call', async () => {
	const list = await methodCallWrapper(creds, 'listCustomUserStatus');
	assert.ok(Array.isArray(list));
	// Other client tests share the server: find ours by name.
	const custom = list.find((c) => c.name === customName);
	assert.ok(custom, `${customName} not in ${JSON.stringify(list)}`);
	assert.deepEqual(Object.keys(custom).sort(), ['_id', '_updatedAt', 'name', 'statusType']);
	assert.equal(custom.statusType, 'busy');
	assert.ok(custom._updatedAt instanceof Date);
});

test('errors come back as the Meteor error of the result frame', async () => {
	await assert.rejects(methodCallWrapper(creds, 'no-such-method'), (err) => {
		assert.equal(err.error, 404);
		assert.equal(err.reason, "Method 'no-such-method' not found");
		assert.equal(err.errorType, 'Meteor.Error');
		return true;
	});
	await assert.rejects(methodCallWrapper(creds, 'setUserStatus', 'dancing', ''), (err) => {
		assert.equal(err.error, 'error-invalid-status');
		return true;
	});
	// A connection's own status has no connection over REST: nothing changes.
	assert.equal(await methodCallWrapper(creds, 'UserPresence:away'), false);
});
