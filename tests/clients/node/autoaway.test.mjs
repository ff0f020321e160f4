// Auto-away as Rocket.Chat's clients do it, driven by the real npm client
// @rocket.chat/ddp-client: the client reads its preferences (`enableAutoAway`,
// `idleTimeLimit` in seconds), starts an idle timer, calls `UserPresence:away` when it
// runs out and `UserPresence:online` on the next activity (Rocket.Chat's web client,
// apps/meteor/client/meteor/user/userPresence.ts; the desktop app and Ruqola do the same
// from the system's idle time). The server only records what the connection reports;
// a second client watching through `stream-user-presence` sees away, then online.
//
// Run by tests/clients/run.sh, which starts a fresh server and passes
//   STATUSD_URL, STATUSD_ADMIN_USER, STATUSD_ADMIN_PASS.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';

import WebSocket from 'ws';
import { DDPSDK } from '@rocket.chat/ddp-client';

globalThis.WebSocket ??= WebSocket;

const URL = (process.env.STATUSD_URL ?? 'http://127.0.0.1:3000').replace(/\/+$/, '');
const ADMIN_USER = process.env.STATUSD_ADMIN_USER ?? 'admin';
const ADMIN_PASS = process.env.STATUSD_ADMIN_PASS ?? '';

const TIMEOUT_MS = 8000;
const CODE = { offline: 0, online: 1, away: 2, busy: 3 };
const IDLE_SECONDS = 1;

const sha256 = (text) => createHash('sha256').update(text).digest('hex');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, what, ms = TIMEOUT_MS) {
	let timer;
	return Promise.race([
		promise,
		new Promise((_, reject) => {
			timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
		}),
	]).finally(() => clearTimeout(timer));
}

async function rest(sdk, method, endpoint, body) {
	try {
		return await withTimeout(sdk.rest[method](endpoint, body), `REST ${method} ${endpoint}`);
	} catch (e) {
		if (e && typeof e.status === 'number' && typeof e.text === 'function') {
			const text = await e.text().catch(() => '');
			throw new Error(`REST ${method.toUpperCase()} ${endpoint} -> ${e.status} ${text}`);
		}
		throw e;
	}
}

const sdks = [];

async function connect() {
	const sdk = DDPSDK.create(URL);
	sdks.push(sdk);
	await withTimeout(sdk.connection.connect(), 'DDP connect');
	return sdk;
}

/**
 * The client side of auto-away, as Rocket.Chat's web client's UserPresence: with
 * `enableAutoAway`, a timer of `idleTimeLimit` seconds, restarted by every activity;
 * when it runs out the connection reports `UserPresence:away`, and the first activity
 * after that reports `UserPresence:online`.
 */
class AutoAway {
	constructor(sdk, { enableAutoAway, idleTimeLimit }) {
		this.sdk = sdk;
		this.enabled = enableAutoAway === true;
		this.awayMs = Number(idleTimeLimit) * 1000;
		this.status = 'online';
		this.timer = undefined;
		this.calls = [];
	}

	start() {
		this.stop();
		if (!this.enabled || !(this.awayMs > 0)) {
			return;
		}
		this.timer = setTimeout(() => {
			this.setStatus('away');
		}, this.awayMs);
	}

	stop() {
		clearTimeout(this.timer);
	}

	/** A key press or a mouse move. */
	activity() {
		if (this.status === 'away') {
			this.setStatus('online');
		}
		this.start();
	}

	setStatus(status) {
		this.status = status;
		const method = status === 'away' ? 'UserPresence:away' : 'UserPresence:online';
		this.calls.push({ method, at: Date.now() });
		this.pending = this.sdk.call(method);
		return this.pending;
	}
}

/** stream-user-presence frames for one user, with a wait for the next matching one. */
class PresenceWatch {
	constructor() {
		this.frames = [];
		this.waiters = [];
	}

	push(frame) {
		this.frames.push({ frame, at: Date.now() });
		for (const w of [...this.waiters]) {
			if (w.pred(frame)) {
				this.waiters.splice(this.waiters.indexOf(w), 1);
				clearTimeout(w.timer);
				w.resolve({ frame, at: Date.now() });
			}
		}
	}

	mark() {
		return this.frames.length;
	}

	next(pred, from, what) {
		const found = this.frames.slice(from).find((f) => pred(f.frame));
		if (found) {
			return Promise.resolve(found);
		}
		return new Promise((resolve, reject) => {
			const w = { pred, resolve };
			w.timer = setTimeout(() => {
				this.waiters.splice(this.waiters.indexOf(w), 1);
				reject(new Error(`timed out waiting for ${what}; frames: ${JSON.stringify(this.frames.slice(from))}`));
			}, TIMEOUT_MS);
			this.waiters.push(w);
		});
	}
}

let watcher; // client B: another user, watching A's presence
let alice; // client A
let aliceUser; // { id, username, password }
const watch = new PresenceWatch();

const frameOf = (user, code) => ({
	msg: 'changed',
	collection: 'stream-user-presence',
	id: user.id,
	fields: { uid: user.id, args: [[user.username, code, '']], eventName: user.id },
});
const isCode = (code) => (f) => f.fields?.uid === aliceUser.id && f.fields?.args?.[0]?.[1] === code;

/** A REST call with a session from a REST login (no realtime connection: no presence). */
async function api(session, method, endpoint, body) {
	const res = await fetch(`${URL}/api/v1/${endpoint}`, {
		method,
		headers: { 'Content-Type': 'application/json', 'X-User-Id': session.userId, 'X-Auth-Token': session.authToken },
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	const json = await res.json();
	assert.equal(res.status, 200, `${method} ${endpoint}: ${res.status} ${JSON.stringify(json)}`);
	return json;
}

async function restLogin(user, password) {
	const res = await fetch(`${URL}/api/v1/login`, {
		method: 'POST',
		headers: { 'Content-Type': 'application/json' },
		body: JSON.stringify({ user, password }),
	});
	const json = await res.json();
	assert.equal(res.status, 200, `login ${user}: ${JSON.stringify(json)}`);
	return json.data;
}

async function createUser(admin, prefix) {
	const suffix = randomBytes(4).toString('hex');
	const user = { username: `${prefix}.${suffix}`, password: randomBytes(12).toString('base64url') };
	const res = await api(admin, 'POST', 'users.create', {
		email: `${prefix}.${suffix}@example.com`,
		name: `${prefix} ${suffix}`,
		password: user.password,
		username: user.username,
	});
	user.id = res.user._id;
	return user;
}

before(async () => {
	// The admin only creates the two users, over REST: its own presence stays out of
	// this test (ddp.test.mjs, run beside it, watches the admin's).
	const admin = await restLogin(ADMIN_USER, ADMIN_PASS);
	aliceUser = await createUser(admin, 'idle');
	const bob = await createUser(admin, 'watcher');
	watcher = await connect();
	await withTimeout(watcher.account.loginWithPassword(bob.username, sha256(bob.password)), 'B login');
	watcher.client.onCollection('stream-user-presence', (frame) => {
		if (frame.fields?.uid === aliceUser.id) {
			watch.push(frame);
		}
	});
	const sub = watcher.client.subscribe('stream-user-presence', '', { added: [aliceUser.id] });
	await withTimeout(sub.ready(), 'stream-user-presence ready');
});

after(() => {
	alice?.autoAway?.stop();
	for (const sdk of sdks) {
		sdk.connection.close();
		sdk.timeoutControl.stop();
	}
});

test('the workspace defaults: auto-away on, 300 s, as public settings and preferences', async () => {
	const res = await fetch(
		`${URL}/api/v1/settings.public?_id=Accounts_Default_User_Preferences_enableAutoAway,Accounts_Default_User_Preferences_idleTimeLimit`,
	).then((r) => r.json());
	const values = Object.fromEntries(res.settings.map((s) => [s._id, s.value]));
	assert.deepEqual(values, {
		Accounts_Default_User_Preferences_enableAutoAway: true,
		Accounts_Default_User_Preferences_idleTimeLimit: 300,
	});
});

test('client A logs in, comes online, and sets a short idle time', async () => {
	const from = watch.mark();
	alice = await connect();
	await withTimeout(alice.account.loginWithPassword(aliceUser.username, sha256(aliceUser.password)), 'A login');
	await watch.next(isCode(CODE.online), from, 'A online');

	assert.deepEqual(await rest(alice, 'get', '/v1/users.getPreferences'), {
		preferences: { enableAutoAway: true, idleTimeLimit: 300 },
		success: true,
	});
	const res = await rest(alice, 'post', '/v1/users.setPreferences', {
		userId: aliceUser.id,
		data: { enableAutoAway: true, idleTimeLimit: IDLE_SECONDS },
	});
	assert.deepEqual(res, {
		user: { _id: aliceUser.id, settings: { preferences: { enableAutoAway: true, idleTimeLimit: IDLE_SECONDS } } },
		success: true,
	});
});

test('idle for idleTimeLimit: A reports away and B sees away', async () => {
	// What the client reads at start-up: its preferences from GET me.
	const me = await rest(alice, 'get', '/v1/me');
	assert.deepEqual(me.settings.preferences, { enableAutoAway: true, idleTimeLimit: IDLE_SECONDS });
	const from = watch.mark();
	const started = Date.now();
	alice.autoAway = new AutoAway(alice, me.settings.preferences);
	alice.autoAway.start();

	const seen = await watch.next(isCode(CODE.away), from, 'A away');
	assert.deepEqual({ ...seen.frame }, frameOf(aliceUser, CODE.away));
	assert.ok(
		seen.at - started >= IDLE_SECONDS * 1000 - 50,
		`away after ${seen.at - started} ms, before the idle time of ${IDLE_SECONDS} s`,
	);
	await withTimeout(alice.autoAway.pending, 'UserPresence:away');
	assert.deepEqual(
		alice.autoAway.calls.map((c) => c.method),
		['UserPresence:away'],
	);

	// Others read it too, and A's own connection says away.
	assert.deepEqual(await rest(watcher, 'get', '/v1/users.getPresence', { userId: aliceUser.id }), {
		presence: 'away',
		success: true,
	});
	const own = await rest(alice, 'get', '/v1/users.getStatus');
	assert.equal(own.status, 'away');
	assert.equal(own.connectionStatus, 'away');
});

test('activity: A reports online and B sees online', async () => {
	const from = watch.mark();
	alice.autoAway.activity();
	const seen = await watch.next(isCode(CODE.online), from, 'A online again');
	assert.deepEqual({ ...seen.frame }, frameOf(aliceUser, CODE.online));
	await withTimeout(alice.autoAway.pending, 'UserPresence:online');
	assert.deepEqual(await rest(watcher, 'get', '/v1/users.getPresence', { userId: aliceUser.id }), {
		presence: 'online',
		success: true,
	});
	// Activity keeps A online: no away while it goes on.
	const stay = watch.mark();
	for (let i = 0; i < 4; i += 1) {
		await sleep((IDLE_SECONDS * 1000) / 2);
		alice.autoAway.activity();
	}
	assert.equal(
		watch.frames.slice(stay).find((f) => isCode(CODE.away)(f.frame)),
		undefined,
		'no away while A is active',
	);
	alice.autoAway.stop();
});

test('with enableAutoAway false the client never goes away', async () => {
	await rest(alice, 'post', '/v1/users.setPreferences', { data: { enableAutoAway: false } });
	const prefs = (await rest(alice, 'get', '/v1/users.getPreferences')).preferences;
	assert.deepEqual(prefs, { enableAutoAway: false, idleTimeLimit: IDLE_SECONDS });
	const from = watch.mark();
	alice.autoAway = new AutoAway(alice, prefs);
	alice.autoAway.start();
	await sleep(IDLE_SECONDS * 1000 * 2 + 300);
	assert.deepEqual(alice.autoAway.calls, []);
	assert.equal(
		watch.frames.slice(from).find((f) => isCode(CODE.away)(f.frame)),
		undefined,
		'no away with auto-away off',
	);
	assert.equal((await rest(alice, 'get', '/v1/users.getStatus')).status, 'online');
});
