// The presence page in a real browser: Debian's headless Chromium, driven by
// playwright-core. Run by tests/web/run.sh, which starts statusd and sets:
//   STATUSD_URL, STATUSD_ADMIN_USER, STATUSD_ADMIN_PASS, STATUSD_CHROMIUM,
//   STATUSD_BROWSER_PROFILE, STATUSD_SCREENSHOT, STATUSD_ARTIFACTS
// Covers sign-in, setting a status, live updates, an admin setting another's status,
// last seen, one-click custom and recent statuses, the counts filtering the list, a
// do-not-disturb schedule set and cleared on the page, API errors in words and the
// settings that disable the controls.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const URL = process.env.STATUSD_URL;
const ADMIN_USER = process.env.STATUSD_ADMIN_USER || 'admin';
const ADMIN_PASS = process.env.STATUSD_ADMIN_PASS;
const EXECUTABLE = process.env.STATUSD_CHROMIUM || '/usr/bin/chromium';
const PROFILE = process.env.STATUSD_BROWSER_PROFILE || fs.mkdtempSync(path.join(os.tmpdir(), 'statusd-chromium-'));
const SCREENSHOT = process.env.STATUSD_SCREENSHOT;
const ARTIFACTS = process.env.STATUSD_ARTIFACTS || os.tmpdir();
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const TIMEOUT = 10_000;

assert.ok(URL, 'STATUSD_URL is not set: run tests/web/run.sh');
assert.ok(ADMIN_PASS, 'STATUSD_ADMIN_PASS is not set: run tests/web/run.sh');

// ------------------------------------------------------------------ REST

async function rest(method, route, { session, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (session) {
    headers['X-User-Id'] = session.userId;
    headers['X-Auth-Token'] = session.authToken;
  }
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${URL}/api/v1/${route}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json();
  return { status: res.status, data };
}

async function ok(method, route, opts) {
  const r = await rest(method, route, opts);
  assert.equal(r.status, 200, `${method} ${route}: ${JSON.stringify(r.data)}`);
  return r.data;
}

async function login(user, password) {
  const data = await ok('POST', 'login', { body: { user, password } });
  return { userId: data.data.userId, authToken: data.data.authToken };
}

async function createUser(admin, username, name, password, roles = ['user']) {
  const data = await ok('POST', 'users.create', {
    session: admin,
    body: { username, name, email: `${username}@example.com`, password, roles },
  });
  return data.user._id;
}

async function setting(admin, id, value) {
  await ok('POST', `settings/${id}`, { session: admin, body: { value } });
}

// --------------------------------------------------------------- browser

let context;
let page;
let admin;
const ids = {};
const browserErrors = [];

function person(p, username) {
  return p.locator(`#people li[data-username="${username}"]`);
}

async function signIn(p, user, password) {
  await p.goto(URL + '/');
  await p.locator('#signin-user').fill(user);
  await p.locator('#signin-password').fill(password);
  await p.locator('#signin-button').click();
  await p.locator('#app').waitFor({ state: 'visible', timeout: TIMEOUT });
  await p.locator('#live[data-state="on"]').waitFor({ timeout: TIMEOUT });
}

async function eventually(what, fn, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what}: ${last && last.message}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  admin = await login(ADMIN_USER, ADMIN_PASS);
  ids.alice = await createUser(admin, 'alice', 'Alice Liddell', 'alice-pass-1');
  ids.bob = await createUser(admin, 'bob', 'Bob Marley', 'bob-pass-1');
  ids.carol = await createUser(admin, 'carol', 'Carol Shaw', 'carol-pass-1');
  ids.dave = await createUser(admin, 'dave', 'Dave Grohl', 'dave-pass-1');
  context = await chromium.launchPersistentContext(PROFILE, {
    executablePath: EXECUTABLE,
    headless: true,
    args: ARGS,
    viewport: { width: 1180, height: 640 },
    deviceScaleFactor: 1,
    locale: 'en-GB',
    timezoneId: 'Europe/Berlin',
    colorScheme: 'light',
  });
  context.setDefaultTimeout(TIMEOUT);
  page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (e) => browserErrors.push(String(e)));
  page.on('console', (m) => {
    // Refused API calls (the tests make some on purpose) are logged by the browser too.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) browserErrors.push(m.text());
  });
});

after(async () => {
  if (page && browserErrors.length) console.log('browser errors:\n' + browserErrors.join('\n'));
  if (context) await context.close();
});

test('the page and its assets are served from the binary', async () => {
  const res = await fetch(URL + '/');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/html/);
  assert.match(res.headers.get('content-security-policy'), /default-src 'none'/);
  const html = await res.text();
  assert.match(html, /\/assets\/app\.js/);
  for (const asset of ['app.js', 'style.css', 'favicon.svg']) {
    const r = await fetch(`${URL}/assets/${asset}`);
    assert.equal(r.status, 200, asset);
  }
});

test('a wrong password is explained in words', async () => {
  await page.goto(URL + '/');
  await page.locator('#signin-user').fill('alice');
  await page.locator('#signin-password').fill('not-her-password');
  await page.locator('#signin-button').click();
  const err = page.locator('#signin-error');
  await err.waitFor({ state: 'visible' });
  assert.match(await err.textContent(), /Wrong username or password/);
});

test('sign in and see everyone, then set a status with a message and an expiry', async () => {
  // Some colour before alice arrives: statuses set over REST.
  const carol = await login('carol', 'carol-pass-1');
  await ok('POST', 'users.setStatus', {
    session: carol,
    body: { status: 'busy', message: 'In a design review', expiresAt: new Date(Date.now() + 90 * 60_000).toISOString() },
  });

  await signIn(page, 'alice', 'alice-pass-1');
  assert.equal(await page.locator('#editor-title').textContent(), 'Your status');
  // Everyone is listed; alice herself is online through the page's own connection.
  await person(page, 'alice').locator('.label.online').waitFor();
  for (const u of ['bob', 'carol', 'dave', 'admin', 'rocket.cat']) {
    await person(page, u).waitFor();
  }
  assert.equal(await person(page, 'carol').locator('.text').textContent(), 'In a design review');
  assert.match(await person(page, 'carol').locator('.until').textContent(), /^until /);
  // An ordinary user sets only their own status.
  assert.equal(await page.locator('#target-row').isHidden(), true);

  await page.locator('input[name="status"][value="busy"]').check();
  await page.locator('#message').fill('Writing the quarterly report');
  await page.locator('#expiry').selectOption('1h');
  // An hour from now is tomorrow after 23:00 in the page's zone (the browser context's
  // timezoneId, Europe/Berlin).
  const day = (d) => d.toLocaleDateString('en-CA', { timeZone: 'Europe/Berlin' });
  const sameDay = day(new Date(Date.now() + 3600_000)) === day(new Date());
  assert.match(await page.locator('#expiry-hint').textContent(), sameDay ? /^Clears at / : /^Clears on tomorrow /);
  const before = Date.now();
  await page.locator('#save').click();
  await page.locator('#status-ok').waitFor({ state: 'visible' });
  assert.match(await page.locator('#status-ok').textContent(), /Your status is saved until/);

  const me = person(page, 'alice');
  await me.locator('.label.busy').waitFor();
  assert.equal(await me.locator('.text').textContent(), 'Writing the quarterly report');
  await me.locator('.until').waitFor();

  // What the server now holds.
  const st = await ok('GET', `users.getStatus?userId=${ids.alice}`, { session: admin });
  assert.equal(st.status, 'busy');
  const expires = Date.parse(st.statusExpiresAt);
  assert.ok(expires > before + 55 * 60_000 && expires < Date.now() + 61 * 60_000, st.statusExpiresAt);
  const info = await ok('GET', `users.info?userId=${ids.alice}`, { session: admin });
  assert.equal(info.user.statusText, 'Writing the quarterly report');

  // The "today" preset ends the day in local time.
  await page.locator('#expiry').selectOption('today');
  assert.match(await page.locator('#expiry-hint').textContent(), /^Clears at 23:59/);
  await page.locator('#expiry').selectOption('');
});

test('a change made by another session over REST appears without reloading', async () => {
  await page.evaluate(() => {
    window.__sameDocument = 'still here';
  });
  const bob = await login('bob', 'bob-pass-1');
  await ok('POST', 'users.setStatus', { session: bob, body: { status: 'away', message: 'At lunch, back at 2' } });
  const row = person(page, 'bob');
  await row.locator('.label.away').waitFor();
  await eventually('bob\'s message', async () => {
    assert.equal(await row.locator('.text').textContent(), 'At lunch, back at 2');
  });
  // Another change, with an expiry: arrives too, with its "until".
  await ok('POST', 'users.setStatus', {
    session: bob,
    body: { status: 'busy', message: 'On a call', expiresAt: new Date(Date.now() + 30 * 60_000).toISOString() },
  });
  await row.locator('.label.busy').waitFor();
  await row.locator('.until').waitFor();
  assert.equal(await row.locator('.text').textContent(), 'On a call');
  assert.equal(await page.evaluate(() => window.__sameDocument), 'still here', 'the page was reloaded');

  // dave goes invisible: offline for everyone else.
  const dave = await login('dave', 'dave-pass-1');
  await ok('POST', 'users.setStatus', { session: dave, body: { status: 'offline', message: '' } });
  await person(page, 'dave').locator('.label.offline').waitFor();
});

test('an admin sets another user\'s status', async () => {
  // A second tab: sessionStorage is per tab, so this is a session of its own.
  const p = await context.newPage();
  try {
    await signIn(p, ADMIN_USER, ADMIN_PASS);
    await p.locator('#target-row').waitFor({ state: 'visible' });
    await p.locator('#target').selectOption(ids.dave);
    assert.equal(await p.locator('#editor-title').textContent(), 'Status of Dave Grohl');
    await p.locator('input[name="status"][value="away"]').check();
    await p.locator('#message').fill('Out sick today');
    await p.locator('#expiry').selectOption('today');
    await p.locator('#save').click();
    await p.locator('#status-ok').waitFor({ state: 'visible' });
    assert.match(await p.locator('#status-ok').textContent(), /The status of Dave Grohl is saved/);
    const info = await ok('GET', `users.info?userId=${ids.dave}`, { session: admin });
    assert.equal(info.user.statusText, 'Out sick today');
    assert.equal(info.user.statusDefault, 'away');
    // alice's page hears of it.
    await eventually('dave on alice\'s page', async () => {
      assert.equal(await person(page, 'dave').locator('.text').textContent(), 'Out sick today');
    });
    await person(page, 'dave').locator('.label.away').waitFor();
    // The README's picture: alice's page with everyone's statuses.
    if (SCREENSHOT) {
      fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT });
    }
  } finally {
    await p.close();
  }
});

test('last seen, no "until" when offline, one-click statuses, counts that filter', async () => {
  // erin comes and goes in a tab of her own: alice's page shows when she was last seen.
  ids.erin = await createUser(admin, 'erin', 'Erin Hunt', 'erin-pass-1');
  const p = await context.newPage();
  await signIn(p, 'erin', 'erin-pass-1');
  await person(page, 'erin').locator('.label.online').waitFor();
  assert.equal(await person(page, 'erin').locator('.seen').count(), 0);
  await p.close();
  const erin = person(page, 'erin');
  await erin.locator('.label.offline').waitFor();
  await eventually('erin\'s last seen', async () => {
    assert.equal(await erin.locator('.seen').textContent(), 'last seen just now');
  });
  const info = await ok('GET', `users.info?userId=${ids.erin}`, { session: admin });
  assert.ok(info.user.statusd && info.user.statusd.lastSeen, JSON.stringify(info.user));

  // carol goes invisible with an expiry: offline to others, with no "until".
  const carol = await login('carol', 'carol-pass-1');
  await ok('POST', 'users.setStatus', {
    session: carol,
    body: { status: 'offline', message: '', expiresAt: new Date(Date.now() + 30 * 60_000).toISOString() },
  });
  await person(page, 'carol').locator('.label.offline').waitFor();
  assert.equal(await person(page, 'carol').locator('.until').count(), 0);

  // A custom status and alice's recent statuses are one click away.
  await ok('POST', 'custom-user-status.create', { session: admin, body: { name: 'In a meeting', statusType: 'busy' } });
  await page.reload();
  await page.locator('#live[data-state="on"]').waitFor();
  const recent = page.locator('#recent-statuses .chip');
  await recent.first().waitFor();
  assert.equal(await recent.first().getAttribute('data-text'), 'Writing the quarterly report');
  assert.equal(await recent.first().getAttribute('data-status'), 'busy');
  const custom = page.locator('#custom-statuses .chip[data-text="In a meeting"]');
  await custom.click();
  await page.locator('#status-ok').waitFor({ state: 'visible' });
  const me = person(page, 'alice');
  await eventually('alice in a meeting', async () => {
    assert.equal(await me.locator('.text').textContent(), 'In a meeting');
  });
  await me.locator('.label.busy').waitFor();
  await eventually('the new recent status', async () => {
    assert.equal(await recent.first().getAttribute('data-text'), 'In a meeting');
  });
  assert.equal(await recent.count(), 2);
  const recents = await ok('GET', 'statusd.recentStatuses', { session: await login('alice', 'alice-pass-1') });
  assert.deepEqual(
    recents.statuses.map((r) => [r.status, r.statusText]),
    [['busy', 'In a meeting'], ['busy', 'Writing the quarterly report']],
  );

  // The counts filter the list: offline only, then everyone again.
  const offline = page.locator('#counts .count[data-status="offline"]');
  await offline.click();
  assert.equal(await offline.getAttribute('aria-pressed'), 'true');
  const rows = page.locator('#people li');
  await eventually('only offline people', async () => {
    const statuses = await rows.evaluateAll((els) => els.map((e) => e.dataset.status));
    assert.ok(statuses.length >= 2, JSON.stringify(statuses));
    assert.ok(statuses.every((s) => s === 'offline'), JSON.stringify(statuses));
  });
  assert.equal(await person(page, 'alice').count(), 0);
  if (SCREENSHOT) await page.screenshot({ path: path.join(path.dirname(SCREENSHOT), 'screenshot-last-seen.png') });
  await offline.click();
  await person(page, 'alice').waitFor();
  assert.equal(await offline.getAttribute('aria-pressed'), 'false');
});

test('do not disturb: a weekly schedule set on the page, read back over REST, cleared', async () => {
  const alice = await login('alice', 'alice-pass-1');
  await page.locator('#dnd').waitFor({ state: 'visible' });
  assert.match(await page.locator('#dnd-now').textContent(), /^No schedule/);
  // The browser's own time zone by default.
  assert.equal(await page.locator('#dnd-zone').inputValue(), 'Europe/Berlin');
  // A window from a minute ago to an hour from now, every day, in Berlin time.
  const hm = (d) =>
    d.toLocaleTimeString('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const start = hm(new Date(Date.now() - 60_000));
  const end = hm(new Date(Date.now() + 60 * 60_000));
  const days = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
  for (const d of days) await page.locator(`input[name="dnd-day"][value="${d}"]`).check();
  await page.locator('#dnd-start').fill(start);
  await page.locator('#dnd-end').fill(end);
  await page.locator('#dnd-text').fill('Focus time');
  await page.locator('#dnd-save').click();
  const got = await eventually('the schedule over REST', async () => {
    const d = await ok('GET', 'statusd.dnd.get', { session: alice });
    assert.ok(d.dnd, JSON.stringify(d));
    return d;
  });
  assert.deepEqual(got.dnd, { ranges: [{ days, start, end }], text: 'Focus time', timeZone: 'Europe/Berlin' });
  assert.ok(got.endsAt, JSON.stringify(got));
  // The page renders the answer to its own POST, which may land after the REST read above.
  await eventually('the schedule on the page', async () => {
    assert.match(await page.locator('#dnd-ranges').textContent(), new RegExp(`Every day ${start}–${end}`));
  });

  // The window opens within a second: alice shows busy with its text, marked.
  const me = person(page, 'alice');
  await eventually('alice in do-not-disturb', async () => {
    assert.equal(await me.locator('.text').textContent(), 'Focus time');
  });
  await me.locator('.label.busy').waitFor();
  await me.locator('.dnd-mark').waitFor();
  const st = await ok('GET', `users.getStatus?userId=${ids.alice}`, { session: admin });
  assert.equal(st.statusSource, 'internal');
  // On, and applied: alice's status is the window's (not her own choice winning).
  await eventually('on now', async () => {
    assert.match(await page.locator('#dnd-now').textContent(), /^On now, until [^:]+:\d\d\.$/);
  });
  if (SCREENSHOT) {
    await page.screenshot({ path: path.join(path.dirname(SCREENSHOT), 'screenshot-dnd.png'), fullPage: true });
  }

  // Cleared on the page: gone over REST, and what alice chose before comes back.
  await page.locator('#dnd-clear').click();
  await eventually('no schedule over REST', async () => {
    const d = await ok('GET', 'statusd.dnd.get', { session: alice });
    assert.equal(d.dnd, null, JSON.stringify(d));
  });
  await eventually('alice back to her own status', async () => {
    assert.equal(await me.locator('.text').textContent(), 'In a meeting');
  });
  assert.equal(await me.locator('.dnd-mark').count(), 0);
  await eventually('no schedule on the page', async () => {
    assert.match(await page.locator('#dnd-now').textContent(), /^No schedule/);
  });
  assert.equal(await page.locator('#dnd-clear').isDisabled(), true);
});

test('an API error is shown in words', async () => {
  await page.locator('#expiry').selectOption('custom');
  // A time that has passed: the server refuses it.
  await page.locator('#expiry-at').fill('2020-01-01T09:00');
  await page.locator('#save').click();
  const err = page.locator('#status-error');
  await err.waitFor({ state: 'visible' });
  assert.match(await err.textContent(), /expiresAt must be a future date/);
  await page.locator('#expiry').selectOption('');
});

test('with the settings off the controls are disabled and say why', async () => {
  await setting(admin, 'Accounts_AllowInvisibleStatusOption', false);
  await page.reload();
  await page.locator('#app').waitFor({ state: 'visible' });
  const invisible = page.locator('input[name="status"][value="offline"]');
  await eventually('invisible disabled', async () => assert.equal(await invisible.isDisabled(), true));
  const invReason = page.locator('#invisible-reason');
  await invReason.waitFor({ state: 'visible' });
  assert.match(await invReason.textContent(), /Accounts_AllowInvisibleStatusOption/);
  // The other statuses still work.
  assert.equal(await page.locator('input[name="status"][value="away"]').isDisabled(), false);
  assert.equal(await page.locator('#save').isDisabled(), false);

  await setting(admin, 'Accounts_AllowUserStatusMessageChange', false);
  await page.reload();
  await page.locator('#app').waitFor({ state: 'visible' });
  const reason = page.locator('#disabled-reason');
  await reason.waitFor({ state: 'visible' });
  assert.match(await reason.textContent(), /Status changes are turned off on this server/);
  assert.match(await reason.textContent(), /Accounts_AllowUserStatusMessageChange/);
  assert.equal(await page.locator('#save').isDisabled(), true);
  assert.equal(await page.locator('#message').isDisabled(), true);
  assert.equal(await page.locator('input[name="status"][value="busy"]').isDisabled(), true);
  await page.screenshot({ path: path.join(ARTIFACTS, 'settings-off.png') });

  // Turned back on, the page follows without a reload (it looks again on focus).
  await setting(admin, 'Accounts_AllowUserStatusMessageChange', true);
  await setting(admin, 'Accounts_AllowInvisibleStatusOption', true);
  await page.evaluate(() => window.dispatchEvent(new Event('focus')));
  await reason.waitFor({ state: 'hidden' });
  assert.equal(await page.locator('#save').isDisabled(), false);
  assert.equal(await invisible.isDisabled(), false);
});

test('the privacy form hides my status from the people I name', async () => {
  // alice is signed in on `page`; the form shows only while the setting is on.
  const admin = await login(ADMIN_USER, ADMIN_PASS);
  assert.equal(await page.locator('#privacy-form').isHidden(), true);
  await setting(admin, 'Accounts_StatusVisibility_Enabled', true);
  await page.evaluate(() => window.dispatchEvent(new Event('focus')));
  await page.locator('#privacy-form').waitFor({ state: 'visible' });
  await page.locator('#hide-from').fill('@bob, nobody-by-that-name');
  await page.locator('#privacy-save').click();
  await page.locator('#privacy-ok').waitFor({ state: 'visible' });
  // Read back as the server keeps it: the names of users who exist.
  assert.equal(await page.locator('#hide-from').inputValue(), 'bob');
  if (SCREENSHOT) {
    await page.screenshot({ path: path.join(path.dirname(SCREENSHOT), 'screenshot-privacy.png'), fullPage: true });
  }
  const bob = await login('bob', 'bob-pass-1');
  const carol = await login('carol', 'carol-pass-1');
  const toBob = await ok('GET', `users.getStatus?userId=${ids.alice}`, { session: bob });
  const toCarol = await ok('GET', `users.getStatus?userId=${ids.alice}`, { session: carol });
  assert.equal(toBob.status, 'offline');
  assert.notEqual(toCarol.status, 'offline');
  // Hidden from everyone, then shown again.
  await page.locator('#hide-all').check();
  await page.locator('#hide-from').fill('');
  await page.locator('#privacy-save').click();
  await eventually('hidden from carol', async () => {
    const r = await ok('GET', `users.getStatus?userId=${ids.alice}`, { session: carol });
    assert.equal(r.status, 'offline');
  });
  await page.locator('#hide-all').uncheck();
  await page.locator('#privacy-save').click();
  await eventually('shown to carol', async () => {
    const r = await ok('GET', `users.getStatus?userId=${ids.alice}`, { session: carol });
    assert.notEqual(r.status, 'offline');
  });
  await setting(admin, 'Accounts_StatusVisibility_Enabled', false);
});

test('signing out ends the session', async () => {
  await page.locator('#sign-out').click();
  await page.locator('#signin').waitFor({ state: 'visible' });
  const stored = await page.evaluate(() => sessionStorage.getItem('statusd.session'));
  assert.equal(stored, null);
  assert.deepEqual(browserErrors, []);
});
