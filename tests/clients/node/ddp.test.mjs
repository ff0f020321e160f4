// statusd driven by the real npm client @rocket.chat/ddp-client (DDP over websocket
// plus its bundled REST client), run with node's built-in test runner.
//
// Run by tests/clients/run.sh, which starts a fresh server and passes
//   STATUSD_URL, STATUSD_ADMIN_USER, STATUSD_ADMIN_PASS.
// Expected frames are those of docs/API.md §7.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';

import WebSocket from 'ws';
import { DDPSDK } from '@rocket.chat/ddp-client';

// Node 20 has no global WebSocket; DDPSDK.create reads the global at call time.
globalThis.WebSocket ??= WebSocket;

const URL = (process.env.STATUSD_URL ?? 'http://127.0.0.1:3000').replace(/\/+$/, '');
const ADMIN_USER = process.env.STATUSD_ADMIN_USER ?? 'admin';
const ADMIN_PASS = process.env.STATUSD_ADMIN_PASS ?? '';

const EVENT_TIMEOUT_MS = 5000;
const CODE = { offline: 0, online: 1, away: 2, busy: 3 };
const ID_RE = /^[23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz]{17}$/;

const sha256 = (text) => createHash('sha256').update(text).digest('hex');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Collects items and lets a test wait (with a timeout) for one that matches. */
class Collector {
	constructor(label) {
		this.label = label;
		this.items = [];
		this.waiters = new Set();
	}

	push(item) {
		this.items.push(item);
		for (const w of [...this.waiters]) {
			if (w.from <= this.items.length - 1 && w.pred(item)) {
				this.waiters.delete(w);
				clearTimeout(w.timer);
				w.resolve(item);
			}
		}
	}

	/** Position to pass as `from` so that only later items count. */
	mark() {
		return this.items.length;
	}

	waitFor(pred, { from = 0, timeout = EVENT_TIMEOUT_MS, what = 'a matching event' } = {}) {
		const found = this.items.slice(from).find(pred);
		if (found) {
			return Promise.resolve(found);
		}
		return new Promise((resolve, reject) => {
			const w = { pred, from, resolve };
			w.timer = setTimeout(() => {
				this.waiters.delete(w);
				reject(
					new Error(
						`${this.label}: timed out after ${timeout} ms waiting for ${what}; ` +
							`received since mark: ${JSON.stringify(this.items.slice(from))}`,
					),
				);
			}, timeout);
			this.waiters.add(w);
		});
	}

	/** Resolves if nothing matching arrives within `ms`; rejects otherwise. */
	async expectNone(pred, { from = 0, ms = 500, what = 'an event' } = {}) {
		await sleep(ms);
		const found = this.items.slice(from).find(pred);
		assert.equal(found, undefined, `${this.label}: unexpected ${what}: ${JSON.stringify(found)}`);
	}
}

const sdks = [];

async function connect() {
	const sdk = DDPSDK.create(URL);
	sdks.push(sdk);
	await withTimeout(sdk.connection.connect(), 'DDP connect');
	return sdk;
}

function close(sdk) {
	sdk.connection.close();
	sdk.timeoutControl.stop();
}

function withTimeout(promise, what, ms = EVENT_TIMEOUT_MS) {
	let timer;
	return Promise.race([
		promise,
		new Promise((_, reject) => {
			timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
		}),
	]).finally(() => clearTimeout(timer));
}

/** sdk.rest rejects with the raw fetch Response; turn it into a readable error. */
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

// State shared by the sequential tests below.
let admin; // DDPSDK logged in as the admin
let adminMe; // the admin's GET /v1/me
const statusEvents = new Collector('notify-logged user-status');
const rawNotifyFrames = new Collector('stream-notify-logged frames');
const presenceFrames = new Collector('stream-user-presence frames');
let other; // { username, password, name, id }

before(async () => {
	admin = await connect();
});

after(() => {
	for (const sdk of sdks) {
		close(sdk);
	}
});

test('connect handshake gives a session', () => {
	assert.equal(admin.connection.status, 'connected');
	assert.equal(typeof admin.connection.session, 'string');
	assert.ok(admin.connection.session.length > 0);
});

test('login with a SHA-256 digest', async () => {
	await withTimeout(admin.account.loginWithPassword(ADMIN_USER, sha256(ADMIN_PASS)), 'login');
	assert.match(admin.account.uid, ID_RE);
	assert.equal(typeof admin.account.user.token, 'string');
	assert.ok(admin.account.user.tokenExpires instanceof Date);
	assert.ok(admin.account.user.tokenExpires.getTime() > Date.now());

	// The DDP login's token works for REST (sdk.rest sends X-User-Id/X-Auth-Token).
	adminMe = await rest(admin, 'get', '/v1/me');
	assert.equal(adminMe._id, admin.account.uid);
	assert.equal(adminMe.username, ADMIN_USER);
	assert.ok(adminMe.roles.includes('admin'));
});

test('a wrong digest is refused', async () => {
	const sdk = await connect();
	await assert.rejects(
		withTimeout(sdk.account.loginWithPassword(ADMIN_USER, sha256(`${ADMIN_PASS}-wrong`)), 'bad login'),
		(err) => {
			assert.equal(err.error, 403);
			assert.equal(err.errorType, 'Meteor.Error');
			assert.equal(typeof err.reason, 'string');
			return true;
		},
	);
	close(sdk);
});

test('an unknown method answers error 404', async () => {
	await assert.rejects(withTimeout(admin.call('no-such-method'), 'unknown method'), (err) => {
		assert.equal(err.error, 404);
		assert.equal(err.reason, "Method 'no-such-method' not found");
		assert.equal(err.message, "Method 'no-such-method' not found [404]");
		assert.equal(err.errorType, 'Meteor.Error');
		return true;
	});
});

test('subscribe to notify-logged user-status', async () => {
	admin.client.onCollection('stream-notify-logged', (frame) => rawNotifyFrames.push(frame));
	const sub = admin.stream('notify-logged', 'user-status', (args) => statusEvents.push(args));
	await withTimeout(sub.ready(), 'notify-logged ready');
});

/** Wait for a user-status event for `uid` with `code` and `text`; check all six fields. */
async function expectStatusEvent({ from, uid, username, code, text, name, roles }) {
	const args = await statusEvents.waitFor((a) => a[0] === uid && a[2] === code && a[3] === text, {
		from,
		what: `user-status [${uid}, ${username}, ${code}, ${JSON.stringify(text)}, …]`,
	});
	assert.ok(Array.isArray(args), 'args is an array');
	assert.ok(args.length >= 6, `args has at least 6 elements: ${JSON.stringify(args)}`);
	assert.deepEqual(args.slice(0, 6), [uid, username, code, text, name, roles]);
	return args;
}

test('DDP setUserStatus reaches the user-status stream', async () => {
	const from = statusEvents.mark();
	const rawFrom = rawNotifyFrames.mark();
	await withTimeout(admin.call('setUserStatus', 'away', 'Away via DDP'), 'setUserStatus');
	const args = await expectStatusEvent({
		from,
		uid: adminMe._id,
		username: ADMIN_USER,
		code: CODE.away,
		text: 'Away via DDP',
		name: adminMe.name,
		roles: adminMe.roles,
	});

	// The raw frame has exactly the documented shape.
	const frame = await rawNotifyFrames.waitFor((f) => f.fields?.args?.[0]?.[3] === 'Away via DDP', {
		from: rawFrom,
		what: 'raw stream-notify-logged frame',
	});
	assert.deepEqual(
		{ ...frame },
		{
			msg: 'changed',
			collection: 'stream-notify-logged',
			id: 'id',
			fields: { eventName: 'user-status', args: [args] },
		},
	);

	const status = await rest(admin, 'get', '/v1/users.getStatus');
	assert.equal(status._id, adminMe._id);
	assert.equal(status.status, 'away');
	assert.equal(status.connectionStatus, 'online');
	assert.equal(status.success, true);

	const me = await rest(admin, 'get', '/v1/me');
	assert.equal(me.statusText, 'Away via DDP');
	assert.equal(me.status, 'away');
	assert.equal(me.statusConnection, 'online');
});

test('REST users.setStatus reaches the user-status stream', async () => {
	const from = statusEvents.mark();
	const res = await rest(admin, 'post', '/v1/users.setStatus', {
		status: 'busy',
		message: 'In a meeting',
	});
	assert.deepEqual(res, { success: true });
	await expectStatusEvent({
		from,
		uid: adminMe._id,
		username: ADMIN_USER,
		code: CODE.busy,
		text: 'In a meeting',
		name: adminMe.name,
		roles: adminMe.roles,
	});
});

test('REST users.setStatus with a bad status answers 400 error-invalid-status', async () => {
	const from = statusEvents.mark();
	// sdk.rest rejects with the raw fetch Response for a non-2xx answer.
	const response = await admin.rest.post('/v1/users.setStatus', { status: 'invalid', message: 'x' }).then(
		(body) => assert.fail(`expected a 400, got 2xx ${JSON.stringify(body)}`),
		(e) => e,
	);
	assert.equal(response.status, 400, `expected a Response with status 400, got ${response}`);
	assert.deepEqual(await response.json(), {
		success: false,
		error: 'Valid status types include online, away, offline, and busy. [error-invalid-status]',
		errorType: 'error-invalid-status',
		details: { method: 'users.setStatus' },
	});
	await statusEvents.expectNone((a) => a[0] === adminMe._id, { from, what: 'event after a refused call' });
});

test('UserPresence:setDefaultStatus returns true on change, false otherwise', async () => {
	const from = statusEvents.mark();
	assert.equal(await withTimeout(admin.call('UserPresence:setDefaultStatus', 'online'), 'setDefaultStatus'), true);
	// The status text is kept.
	await expectStatusEvent({
		from,
		uid: adminMe._id,
		username: ADMIN_USER,
		code: CODE.online,
		text: 'In a meeting',
		name: adminMe.name,
		roles: adminMe.roles,
	});
	const from2 = statusEvents.mark();
	assert.equal(await withTimeout(admin.call('UserPresence:setDefaultStatus', 'online'), 'setDefaultStatus again'), false);
	await statusEvents.expectNone((a) => a[0] === adminMe._id, { from: from2, what: 'event for an unchanged status' });
});

test('create a second user over REST', async () => {
	const suffix = randomBytes(4).toString('hex');
	other = {
		username: `nodeuser.${suffix}`,
		password: randomBytes(12).toString('base64url'),
		name: `Node User ${suffix}`,
	};
	const res = await rest(admin, 'post', '/v1/users.create', {
		email: `nodeuser.${suffix}@example.com`,
		name: other.name,
		password: other.password,
		username: other.username,
	});
	assert.equal(res.success, true);
	assert.match(res.user._id, ID_RE);
	assert.equal(res.user.username, other.username);
	other.id = res.user._id;
});

/** Wait for a stream-user-presence frame for the second user; check its exact shape. */
async function expectPresenceFrame({ from, code, text }) {
	const frame = await presenceFrames.waitFor(
		(f) => f.id === other.id && f.fields?.args?.[0]?.[1] === code && f.fields?.args?.[0]?.[2] === text,
		{ from, what: `stream-user-presence [${other.username}, ${code}, ${JSON.stringify(text)}]` },
	);
	assert.deepEqual(
		{ ...frame },
		{
			msg: 'changed',
			collection: 'stream-user-presence',
			id: other.id,
			fields: { uid: other.id, args: [[other.username, code, text]], eventName: other.id },
		},
	);
	return frame;
}

let otherSdk;

test('stream-user-presence: a second user logging in shows online', async () => {
	admin.client.onCollection('stream-user-presence', (frame) => presenceFrames.push(frame));
	const sub = admin.client.subscribe('stream-user-presence', '', { added: [other.id] });
	await withTimeout(sub.ready(), 'stream-user-presence ready');

	const from = presenceFrames.mark();
	const fromStatus = statusEvents.mark();
	otherSdk = await connect();
	await withTimeout(otherSdk.account.loginWithPassword(other.username, sha256(other.password)), 'second login');
	assert.equal(otherSdk.account.uid, other.id);

	await expectPresenceFrame({ from, code: CODE.online, text: '' });
	await expectStatusEvent({
		from: fromStatus,
		uid: other.id,
		username: other.username,
		code: CODE.online,
		text: '',
		name: other.name,
		roles: ['user'],
	});
});

test('stream-user-presence: the second user changes status over DDP and REST', async () => {
	let from = presenceFrames.mark();
	assert.equal(await withTimeout(otherSdk.call('UserPresence:setDefaultStatus', 'busy'), 'setDefaultStatus busy'), true);
	await expectPresenceFrame({ from, code: CODE.busy, text: '' });

	from = presenceFrames.mark();
	const res = await rest(otherSdk, 'post', '/v1/users.setStatus', { status: 'away', message: 'brb' });
	assert.deepEqual(res, { success: true });
	await expectPresenceFrame({ from, code: CODE.away, text: 'brb' });

	from = presenceFrames.mark();
	const fromStatus = statusEvents.mark();
	await withTimeout(otherSdk.call('setUserStatus', 'online', 'Back at my desk'), 'setUserStatus');
	await expectPresenceFrame({ from, code: CODE.online, text: 'Back at my desk' });
	await expectStatusEvent({
		from: fromStatus,
		uid: other.id,
		username: other.username,
		code: CODE.online,
		text: 'Back at my desk',
		name: other.name,
		roles: ['user'],
	});

	// The admin reads the other user's presence over REST.
	assert.deepEqual(await rest(admin, 'get', '/v1/users.getPresence', { userId: other.id }), {
		presence: 'online',
		success: true,
	});

	// users.presence with the api-client's raw ids[]= brackets.
	const presence = await rest(admin, 'get', '/v1/users.presence', { ids: [other.id] });
	assert.equal(presence.success, true);
	assert.equal(typeof presence.full, 'boolean');
	assert.equal(presence.users.length, 1, JSON.stringify(presence));
	assert.equal(presence.users[0]._id, other.id);
	assert.equal(presence.users[0].username, other.username);
	assert.equal(presence.users[0].status, 'online');
	assert.equal(presence.users[0].statusText, 'Back at my desk');
});

test('stream-user-presence: UserPresence:away marks the connection away', async () => {
	const from = presenceFrames.mark();
	await withTimeout(otherSdk.call('UserPresence:away'), 'UserPresence:away');
	await expectPresenceFrame({ from, code: CODE.away, text: 'Back at my desk' });

	const from2 = presenceFrames.mark();
	await withTimeout(otherSdk.call('UserPresence:online'), 'UserPresence:online');
	await expectPresenceFrame({ from: from2, code: CODE.online, text: 'Back at my desk' });
});

test('logging the second user out over DDP makes it offline', async () => {
	const from = presenceFrames.mark();
	const fromStatus = statusEvents.mark();
	await withTimeout(otherSdk.account.logout(), 'logout');
	await expectPresenceFrame({ from, code: CODE.offline, text: 'Back at my desk' });
	await expectStatusEvent({
		from: fromStatus,
		uid: other.id,
		username: other.username,
		code: CODE.offline,
		text: 'Back at my desk',
		name: other.name,
		roles: ['user'],
	});
	close(otherSdk);
});

test('closing the second user’s connection makes it offline', async () => {
	let from = presenceFrames.mark();
	const sdk = await connect();
	await withTimeout(sdk.account.loginWithPassword(other.username, sha256(other.password)), 'login again');
	await expectPresenceFrame({ from, code: CODE.online, text: 'Back at my desk' });

	from = presenceFrames.mark();
	const fromStatus = statusEvents.mark();
	close(sdk);
	await expectPresenceFrame({ from, code: CODE.offline, text: 'Back at my desk' });
	await expectStatusEvent({
		from: fromStatus,
		uid: other.id,
		username: other.username,
		code: CODE.offline,
		text: 'Back at my desk',
		name: other.name,
		roles: ['user'],
	});

	// Over REST too, once the last connection has gone.
	assert.deepEqual(await rest(admin, 'get', '/v1/users.getPresence', { username: other.username }), {
		presence: 'offline',
		success: true,
	});
});

test('the admin logs out over DDP', async () => {
	await withTimeout(admin.account.logout(), 'admin logout');
	assert.equal(admin.account.uid, undefined);
	assert.equal(admin.account.user, undefined);
});
