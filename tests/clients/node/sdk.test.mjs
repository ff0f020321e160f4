// statusd driven by the `@rocket.chat/sdk` bot driver (npm, 1.0.0-alpha: the line
// without a git dependency; its DDP driver is the one the Rocket.Chat mobile app's
// `mobile` branch of Rocket.Chat.js.SDK is built from), the way a bot starts:
// connect, login (REST login, then a DDP resume), subscribeToMessages (the
// `__my_messages__` stream: it must resolve), the notify streams its driver
// subscribes to, a status set through its REST helper, and a second client of the
// same SDK receiving that change.
//
// Run by tests/clients/run.sh, which starts a fresh server and passes
//   STATUSD_URL, STATUSD_ADMIN_USER, STATUSD_ADMIN_PASS.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import sdk from '@rocket.chat/sdk';

const { Bot, Rocketchat } = sdk;

const URL = (process.env.STATUSD_URL ?? 'http://127.0.0.1:3000').replace(/\/+$/, '');
const ADMIN_USER = process.env.STATUSD_ADMIN_USER ?? 'admin';
const ADMIN_PASS = process.env.STATUSD_ADMIN_PASS ?? '';
const EVENT_TIMEOUT_MS = 5000;

const quiet = { debug() {}, info() {}, warn() {}, warning() {}, error() {} };

async function rest(path, { method = 'POST', body, auth } = {}) {
	const headers = { 'content-type': 'application/json' };
	if (auth) {
		headers['x-user-id'] = auth.userId;
		headers['x-auth-token'] = auth.authToken;
	}
	const res = await fetch(`${URL}/api/v1/${path}`, {
		method,
		headers,
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	return { status: res.status, body: await res.json() };
}

/** Resolves with the first `changed` frame on `stream` that `pred` accepts. */
function nextOn(client, stream, pred, what) {
	return new Promise((resolve, reject) => {
		let stop = () => {};
		const timer = setTimeout(() => {
			stop();
			reject(new Error(`no ${what} within ${EVENT_TIMEOUT_MS} ms`));
		}, EVENT_TIMEOUT_MS);
		client
			.onStreamData(stream, (msg) => {
				if (msg.msg === 'changed' && pred(msg)) {
					clearTimeout(timer);
					stop();
					resolve(msg);
				}
			})
			.then((handle) => {
				stop = () => handle.stop();
			});
	});
}

const suffix = randomBytes(4).toString('hex');
const botUser = { username: `sdkbot-${suffix}`, password: `sdkbot-pass-${suffix}` };
const watcherUser = { username: `sdkwatch-${suffix}`, password: `sdkwatch-pass-${suffix}` };
let bot;
let watcher;

before(async () => {
	const login = await rest('login', { body: { user: ADMIN_USER, password: ADMIN_PASS } });
	assert.equal(login.status, 200, JSON.stringify(login.body));
	const admin = login.body.data;
	for (const [u, roles] of [
		[botUser, ['bot']],
		[watcherUser, ['user']],
	]) {
		const r = await rest('users.create', {
			auth: admin,
			body: { ...u, name: u.username, email: `${u.username}@example.org`, roles },
		});
		assert.equal(r.status, 200, JSON.stringify(r.body));
	}
});

after(async () => {
	for (const c of [bot, watcher]) {
		await c?.disconnect().catch(() => {});
	}
});

test('a bot starts with the SDK driver: connect, login, subscribeToMessages', async () => {
	bot = new Bot({ host: URL, useSsl: false, logger: quiet });
	await bot.connect({});
	const me = await bot.login(botUser);
	assert.ok(bot.userId, `logged in: ${JSON.stringify(me)}`);
	const messages = await bot.subscribeToMessages();
	assert.equal(messages.name, 'stream-room-messages');
	assert.ok(messages.id, 'the subscription has the id its ready named');
	// The rest of the driver's start-up: every key it subscribes to is ready.
	await bot.subscribeNotifyAll();
	await bot.subscribeLoggedNotify();
	await bot.subscribeNotifyUser();
});

test('a status set through the REST helper reaches a second client', async () => {
	watcher = new Rocketchat({ host: URL, useSsl: false, logger: quiet });
	await watcher.connect({});
	await watcher.login(watcherUser);
	await watcher.subscribe('stream-notify-logged', 'user-status');
	const seen = nextOn(
		watcher,
		'stream-notify-logged',
		(m) => m.fields.eventName === 'user-status' && m.fields.args[0][0] === bot.userId && m.fields.args[0][2] === 3,
		"the bot's busy status",
	);
	// The bot's own userData (listeners.module.ts, `presence.status`).
	await bot.subscribe('stream-notify-user', `${bot.userId}/userData`);
	const own = nextOn(
		bot,
		'stream-notify-user',
		(m) => m.fields.eventName === `${bot.userId}/userData`,
		'the bot\'s own userData',
	);

	const r = await bot.post('users.setStatus', { status: 'busy', message: 'on duty' });
	assert.equal(r.success, true, JSON.stringify(r));

	const frame = await seen;
	assert.deepEqual(frame.fields.args[0].slice(0, 4), [bot.userId, botUser.username, 3, 'on duty']);
	const data = await own;
	assert.deepEqual(data.fields.args, [
		{ type: 'updated', id: bot.userId, diff: { status: 'busy', statusText: 'on duty' }, unset: {} },
	]);
});
