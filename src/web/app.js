// The live presence page: plain JavaScript, no build step, no dependencies.
// REST (/api/v1) for sign-in, the initial list and changes; DDP over /websocket
// (stream-notify-logged "user-status") for everything that changes afterwards.
'use strict';

(function () {
  const STATUS_BY_CODE = ['offline', 'online', 'away', 'busy'];
  const RANK = { online: 0, busy: 1, away: 2, offline: 3 };
  const LABEL = { online: 'Online', away: 'Away', busy: 'Busy', offline: 'Offline' };
  const SESSION_KEY = 'statusd.session';
  const SETTING_CHANGE = 'Accounts_AllowUserStatusMessageChange';
  const SETTING_INVISIBLE = 'Accounts_AllowInvisibleStatusOption';
  // Presence privacy: users may hide their status (README "Presence privacy").
  const SETTING_PRIVACY = 'Accounts_StatusVisibility_Enabled';

  const $ = (id) => document.getElementById(id);
  const state = {
    session: null, // {userId, authToken}
    me: null,
    users: new Map(), // id -> user
    settings: { allowChange: true, allowInvisible: true, siteName: 'statusd' },
    canEditOthers: false,
    target: null, // user id whose status the editor sets
    dirty: false,
    statusFilter: null, // show only users of this status (a count was clicked)
    customStatuses: [], // [{name, statusType}]
    recentStatuses: [], // [{status, statusText}], the signed-in user's
    dnd: null, // the signed-in user's statusd.dnd.get answer
    dndDirty: false, // the schedule form holds unsaved input
  };
  const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
  const DAY_LABEL = { mon: 'Mon', tue: 'Tue', wed: 'Wed', thu: 'Thu', fri: 'Fri', sat: 'Sat', sun: 'Sun' };
  // The do-not-disturb window is an internal claim (statusSource "internal", claim id
  // statusd.dnd); the lists show the source, not the id, so a marker says "internal".
  const INTERNAL_TITLE = 'Set by the server, not by hand: a do-not-disturb schedule (or another internal claim)';

  // ------------------------------------------------------------------ REST

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (state.session) {
      headers['X-User-Id'] = state.session.userId;
      headers['X-Auth-Token'] = state.session.authToken;
    }
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch('/api/v1/' + path, init);
    } catch (e) {
      throw new ApiError('The server cannot be reached (' + e.message + ').', 0);
    }
    let data = {};
    try {
      data = await res.json();
    } catch (_) {
      // not JSON: described below by its status
    }
    if (!res.ok || data.success === false) {
      const words = data.error || data.message || 'The server answered ' + res.status + '.';
      throw new ApiError(String(words), res.status);
    }
    return data;
  }

  // ---------------------------------------------------------------- session

  function loadSession() {
    try {
      const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
      if (s && typeof s.userId === 'string' && typeof s.authToken === 'string') return s;
    } catch (_) {
      // ignore a broken entry
    }
    return null;
  }

  function saveSession(s) {
    state.session = s;
    if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
    else sessionStorage.removeItem(SESSION_KEY);
  }

  // ---------------------------------------------------------------- helpers

  // "Invisible status is disabled [error-status-not-allowed]" -> words + code
  function showError(el, err) {
    const text = err instanceof Error ? err.message : String(err);
    el.textContent = '';
    const m = /^(.*\S)\s*\[([\w.-]+)\]$/.exec(text);
    if (m) {
      el.append(m[1]);
      const code = document.createElement('span');
      code.className = 'code';
      code.textContent = m[2];
      el.append(code);
    } else {
      el.append(text);
    }
    el.hidden = false;
  }

  function hide(...els) {
    for (const el of els) el.hidden = true;
  }

  function initials(name) {
    const parts = String(name || '?').trim().split(/[\s.]+/).filter(Boolean);
    const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || '?').slice(0, 2);
    return letters.toUpperCase();
  }

  function hue(text) {
    let h = 0;
    for (const c of String(text)) h = (h * 31 + c.codePointAt(0)) % 360;
    return h;
  }

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  function when(date) {
    const now = new Date();
    const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    if (sameDay(date, now)) return time;
    const tomorrow = new Date(now);
    tomorrow.setDate(now.getDate() + 1);
    if (sameDay(date, tomorrow)) return 'tomorrow ' + time;
    return date.toLocaleDateString([], { weekday: 'short', day: 'numeric', month: 'short' }) + ' ' + time;
  }

  // "just now", "5 min ago", "2 h ago", "3 days ago"
  function ago(date) {
    const secs = Math.max(0, (Date.now() - date.getTime()) / 1000);
    if (secs < 60) return 'just now';
    if (secs < 3600) return Math.floor(secs / 60) + ' min ago';
    if (secs < 86400) return Math.floor(secs / 3600) + ' h ago';
    const days = Math.floor(secs / 86400);
    return days + (days === 1 ? ' day ago' : ' days ago');
  }

  // The expiry the editor's preset or date-time input names, or null for none.
  function chosenExpiry() {
    const preset = $('expiry').value;
    const now = new Date();
    switch (preset) {
      case '30m':
        return new Date(now.getTime() + 30 * 60 * 1000);
      case '1h':
        return new Date(now.getTime() + 60 * 60 * 1000);
      case 'today': {
        const end = new Date(now);
        end.setHours(23, 59, 59, 999);
        return end;
      }
      case 'custom': {
        const v = $('expiry-at').value;
        if (!v) throw new Error('Choose the date and time when the status should clear.');
        const at = new Date(v); // datetime-local: local time
        if (isNaN(at.getTime())) throw new Error('That date and time cannot be read.');
        return at;
      }
      default:
        return null;
    }
  }

  function updateExpiryHint() {
    const custom = $('expiry').value === 'custom';
    $('expiry-at').hidden = !custom;
    let hint = '';
    try {
      const at = chosenExpiry();
      if (at) hint = 'Clears ' + (sameDay(at, new Date()) ? 'at ' : 'on ') + when(at) + '.';
    } catch (_) {
      hint = '';
    }
    $('expiry-hint').textContent = hint;
  }

  // ------------------------------------------------------------------- views

  function showSignIn(message) {
    live.stop();
    state.me = null;
    state.users.clear();
    hide($('app'), $('whoami'), $('live'));
    $('signin').hidden = false;
    const err = $('signin-error');
    if (message) showError(err, message);
    else err.hidden = true;
    $('signin-user').focus();
  }

  function renderCounts() {
    const counts = { online: 0, busy: 0, away: 0, offline: 0 };
    for (const u of visibleUsers()) counts[u.status] = (counts[u.status] || 0) + 1;
    const el = $('counts');
    el.textContent = '';
    for (const s of ['online', 'busy', 'away', 'offline']) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'count';
      button.dataset.status = s;
      button.setAttribute('aria-pressed', String(state.statusFilter === s));
      button.title = state.statusFilter === s ? 'Show everyone' : 'Show only ' + s;
      const dot = document.createElement('span');
      dot.className = 'dot ' + s;
      button.append(dot, counts[s] + ' ' + s);
      button.addEventListener('click', () => {
        state.statusFilter = state.statusFilter === s ? null : s;
        renderPeople();
      });
      el.append(button);
    }
  }

  function visibleUsers() {
    return [...state.users.values()].filter((u) => u.active !== false);
  }

  function sortedUsers() {
    const meId = state.me && state.me._id;
    return visibleUsers().sort((a, b) => {
      if (a._id === meId) return -1;
      if (b._id === meId) return 1;
      return (RANK[a.status] - RANK[b.status]) || String(a.name || a.username).localeCompare(String(b.name || b.username));
    });
  }

  function personItem(u) {
    const li = document.createElement('li');
    li.className = 'person' + (state.me && u._id === state.me._id ? ' me' : '');
    li.dataset.userId = u._id;
    li.dataset.username = u.username;
    li.dataset.status = u.status;

    const avatar = document.createElement('span');
    avatar.className = 'avatar';
    avatar.style.background = 'hsl(' + hue(u.username) + ' 55% 48%)';
    avatar.textContent = initials(u.name || u.username);
    const dot = document.createElement('span');
    dot.className = 'dot ' + u.status;
    avatar.append(dot);

    const who = document.createElement('div');
    who.className = 'who';
    const line1 = document.createElement('div');
    line1.className = 'line1';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = u.name || u.username;
    const username = document.createElement('span');
    username.className = 'username';
    username.textContent = '@' + u.username;
    line1.append(name, username);
    if (u.type === 'bot') {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = 'bot';
      line1.append(badge);
    }
    // Only while it shows: an offline user's claims say nothing to others.
    if (u.statusSource === 'internal' && u.status !== 'offline') {
      const mark = document.createElement('span');
      mark.className = 'dnd-mark';
      mark.textContent = 'do not disturb';
      mark.title = INTERNAL_TITLE;
      line1.append(mark);
    }
    const text = document.createElement('div');
    text.className = 'text';
    text.textContent = u.statusText || '';
    who.append(line1, text);

    const st = document.createElement('div');
    st.className = 'state';
    const label = document.createElement('span');
    label.className = 'label ' + u.status;
    label.textContent = LABEL[u.status] || u.status;
    st.append(label);
    // An offline user's expiry says nothing to others: no "until …".
    if (u.statusExpiresAt && u.status !== 'offline') {
      const at = new Date(u.statusExpiresAt);
      if (!isNaN(at.getTime())) {
        const until = document.createElement('span');
        until.className = 'until';
        until.textContent = 'until ' + when(at);
        until.title = at.toLocaleString();
        st.append(until);
      }
    }
    const seenAt = u.status === 'offline' && u.statusd && u.statusd.lastSeen ? new Date(u.statusd.lastSeen) : null;
    if (seenAt && !isNaN(seenAt.getTime())) {
      const seen = document.createElement('span');
      seen.className = 'seen';
      seen.textContent = 'last seen ' + ago(seenAt);
      seen.title = seenAt.toLocaleString();
      st.append(seen);
    }
    li.append(avatar, who, st);
    return li;
  }

  function renderPeople(flashId) {
    const list = $('people');
    const filter = $('filter').value.trim().toLowerCase();
    list.textContent = '';
    let shown = 0;
    for (const u of sortedUsers()) {
      if (filter && !(String(u.name).toLowerCase().includes(filter) || u.username.toLowerCase().includes(filter))) continue;
      if (state.statusFilter && u.status !== state.statusFilter) continue;
      const li = personItem(u);
      if (u._id === flashId) {
        li.classList.add('flash');
        setTimeout(() => li.classList.remove('flash'), 50);
      }
      list.append(li);
      shown++;
    }
    $('empty').hidden = shown > 0;
    renderCounts();
  }

  function renderTargets() {
    const row = $('target-row');
    row.hidden = !state.canEditOthers;
    if (!state.canEditOthers) return;
    const select = $('target');
    const current = state.target;
    select.textContent = '';
    const users = visibleUsers().sort((a, b) => a.username.localeCompare(b.username));
    for (const u of users) {
      const opt = document.createElement('option');
      opt.value = u._id;
      opt.textContent = u._id === state.me._id ? 'Me (' + u.username + ')' : (u.name || u.username) + ' (@' + u.username + ')';
      select.append(opt);
    }
    select.value = current;
  }

  // Fills the editor with what the target chose (statusDefault when known).
  function fillEditor() {
    const u = state.users.get(state.target) || state.me;
    if (!u) return;
    const isMe = u._id === state.me._id;
    $('editor-title').textContent = isMe ? 'Your status' : 'Status of ' + (u.name || u.username);
    let chosen = u.statusDefault || (u.status === 'offline' && isMe ? 'offline' : u.status);
    if (!chosen || !(chosen in RANK)) chosen = 'online';
    for (const r of document.querySelectorAll('input[name="status"]')) {
      r.checked = r.value === chosen && !r.disabled;
    }
    $('message').value = u.statusText || '';
    $('expiry').value = '';
    $('expiry-at').value = '';
    updateExpiryHint();
    state.dirty = false;
  }

  // One-click choices: the workspace's custom statuses and the user's recent ones.
  // A click saves that status and text at once (only the signed-in user's own recent
  // statuses are offered; custom statuses for whoever the editor targets).
  function renderQuick() {
    const mine = state.target === (state.me && state.me._id);
    const recent = mine ? state.recentStatuses : [];
    fillChips($('recent-statuses'), recent.map((r) => ({ status: r.status, text: r.statusText || '' })));
    fillChips($('custom-statuses'), state.customStatuses.map((c) => ({ status: c.statusType, text: c.name })));
    $('recent-group').hidden = recent.length === 0;
    $('custom-group').hidden = state.customStatuses.length === 0;
    $('quick').hidden = recent.length === 0 && state.customStatuses.length === 0;
  }

  function fillChips(el, choices) {
    el.textContent = '';
    for (const c of choices) {
      if (!(c.status in RANK)) continue;
      const chip = document.createElement('button');
      chip.type = 'button';
      chip.className = 'chip';
      chip.dataset.status = c.status;
      chip.dataset.text = c.text;
      const dot = document.createElement('span');
      dot.className = 'dot ' + c.status;
      const text = document.createElement('span');
      text.className = 'chip-text';
      text.textContent = c.text || LABEL[c.status];
      chip.title = 'Set ' + LABEL[c.status] + (c.text ? ': ' + c.text : '');
      chip.append(dot, text);
      chip.addEventListener('click', () => quickSet(c.status, c.text));
      el.append(chip);
    }
  }

  function quickSet(status, text) {
    for (const r of document.querySelectorAll('input[name="status"]')) r.checked = r.value === status && !r.disabled;
    $('message').value = text;
    $('expiry').value = '';
    updateExpiryHint();
    $('status-form').requestSubmit();
  }

  async function loadQuick() {
    const [custom, recent] = await Promise.all([
      api('GET', 'custom-user-status.list?count=100').catch(() => ({ statuses: [] })),
      api('GET', 'statusd.recentStatuses').catch(() => ({ statuses: [] })),
    ]);
    state.customStatuses = custom.statuses || [];
    state.recentStatuses = recent.statuses || [];
    if (state.me) renderQuick();
  }

  // ------------------------------------------------------------ do not disturb

  function browserZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    } catch (_) {
      return 'UTC';
    }
  }

  // ["mon", …] -> "Every day", "Weekdays", "Weekends" or "Mon, Wed"
  function daysText(days) {
    const set = new Set(days);
    if (set.size === 7) return 'Every day';
    const is = (list) => set.size === list.length && list.every((d) => set.has(d));
    if (is(['mon', 'tue', 'wed', 'thu', 'fri'])) return 'Weekdays';
    if (is(['sat', 'sun'])) return 'Weekends';
    return DAYS.filter((d) => set.has(d)).map((d) => DAY_LABEL[d]).join(', ');
  }

  function fillDndForm(data) {
    const sched = data && data.dnd;
    const first = sched && sched.ranges && sched.ranges[0];
    const days = new Set(first ? first.days : ['mon', 'tue', 'wed', 'thu', 'fri']);
    for (const box of document.querySelectorAll('input[name="dnd-day"]')) box.checked = days.has(box.value);
    $('dnd-start').value = first ? first.start.slice(0, 5) : '18:00';
    $('dnd-end').value = first ? first.end.slice(0, 5) : '09:00';
    $('dnd-text').value = sched ? sched.text || '' : '';
    $('dnd-zone').value = sched ? sched.timeZone : browserZone();
    state.dndDirty = false;
  }

  // The signed-in user's schedule: whether a window is on now, its ranges.
  function renderDnd() {
    const data = state.dnd;
    $('dnd').hidden = !state.me;
    const now = $('dnd-now');
    const sched = data && data.dnd;
    const list = $('dnd-ranges');
    list.textContent = '';
    if (!sched) {
      now.textContent = 'No schedule: set one to show busy at fixed times every week.';
      now.dataset.state = 'none';
    } else if (data.endsAt) {
      const me = state.users.get(state.me._id);
      const mine = me && me.statusSource === 'internal';
      now.textContent = 'On now, until ' + when(new Date(data.endsAt)) + (mine ? '.' : ': your own status wins until then.');
      now.dataset.state = 'on';
    } else {
      now.textContent = data.nextStart ? 'Off now; next from ' + when(new Date(data.nextStart)) + '.' : 'Off now.';
      now.dataset.state = 'off';
    }
    if (sched) {
      for (const r of sched.ranges || []) {
        const li = document.createElement('li');
        li.textContent = daysText(r.days) + ' ' + r.start.slice(0, 5) + '–' + r.end.slice(0, 5);
        list.append(li);
      }
      const zone = document.createElement('li');
      zone.textContent = sched.timeZone + (sched.text ? ' · "' + sched.text + '"' : '');
      list.append(zone);
    }
    $('dnd-clear').disabled = !sched;
    if (!state.dndDirty) fillDndForm(data);
  }

  async function loadDnd() {
    state.dnd = await api('GET', 'statusd.dnd.get');
    renderDnd();
  }

  // A status event of our own may be a window opening or closing: read it again.
  let dndTimer = null;
  function dndSoon() {
    clearTimeout(dndTimer);
    dndTimer = setTimeout(() => loadDnd().catch(() => {}), 300);
  }

  async function onDndSave(ev) {
    ev.preventDefault();
    const err = $('dnd-error');
    err.hidden = true;
    const days = [...document.querySelectorAll('input[name="dnd-day"]:checked')].map((b) => b.value);
    const start = $('dnd-start').value;
    const end = $('dnd-end').value;
    if (days.length === 0) return showError(err, 'Choose at least one day.');
    if (!start || !end) return showError(err, 'Choose when it starts and ends.');
    const body = {
      timeZone: $('dnd-zone').value.trim() || browserZone(),
      ranges: [{ days, start, end }],
      text: $('dnd-text').value,
    };
    $('dnd-save').disabled = true;
    try {
      state.dnd = await api('POST', 'statusd.dnd.set', body);
      state.dndDirty = false;
      renderDnd();
    } catch (e) {
      showError(err, e);
    } finally {
      $('dnd-save').disabled = false;
    }
  }

  async function onDndClear() {
    const err = $('dnd-error');
    err.hidden = true;
    $('dnd-clear').disabled = true;
    try {
      state.dnd = await api('POST', 'statusd.dnd.clear', {});
      state.dndDirty = false;
      renderDnd();
    } catch (e) {
      showError(err, e);
      $('dnd-clear').disabled = false;
    }
  }

  // An offline event carries no last seen (the frame is Rocket.Chat's): read it.
  async function refreshLastSeen(uid) {
    try {
      const data = await api('GET', 'users.info?userId=' + encodeURIComponent(uid));
      const u = state.users.get(uid);
      if (u && data.user && u.status === 'offline') {
        u.statusd = data.user.statusd;
        renderPeople();
      }
    } catch (_) {
      // shown at the next full read
    }
  }

  // "<words> (setting <code>id</code> is off). <after>"
  function sayWithSetting(el, words, id, after) {
    const code = document.createElement('code');
    code.textContent = id;
    el.textContent = '';
    el.append(words + ' (setting ', code, ' is off).' + (after ? ' ' + after : ''));
  }

  function applySettings() {
    const { allowChange, allowInvisible } = state.settings;
    $('status-fields').disabled = !allowChange;
    const reason = $('disabled-reason');
    if (!allowChange) {
      sayWithSetting(reason, 'Status changes are turned off on this server', SETTING_CHANGE, 'Ask an administrator to turn them on.');
      reason.hidden = false;
    } else {
      reason.hidden = true;
    }
    const invisible = document.querySelector('input[name="status"][value="offline"]');
    invisible.disabled = !allowInvisible;
    if (!allowInvisible && invisible.checked) invisible.checked = false;
    const invReason = $('invisible-reason');
    if (!allowInvisible) {
      sayWithSetting(invReason, 'Invisible is not available: it is turned off on this server', SETTING_INVISIBLE, '');
      invReason.hidden = false;
    } else {
      invReason.hidden = true;
    }
    $('site-name').textContent = state.settings.siteName || 'statusd';
    $('privacy-form').hidden = !state.settings.privacy;
  }

  // ---------------------------------------------------------------- privacy

  async function loadPrivacy() {
    const data = await api('GET', 'users.getPreferences');
    const prefs = data.preferences || {};
    $('hide-all').checked = prefs.statusdHideStatus === true;
    $('hide-from').value = (prefs.statusVisibilityDenied || []).join(', ');
  }

  async function onPrivacySave(ev) {
    ev.preventDefault();
    hide($('privacy-error'), $('privacy-ok'));
    const names = $('hide-from')
      .value.split(',')
      .map((n) => n.trim().replace(/^@/, ''))
      .filter(Boolean);
    try {
      await api('POST', 'users.setPreferences', {
        data: { statusdHideStatus: $('hide-all').checked, statusVisibilityDenied: names },
      });
      await loadPrivacy();
      $('privacy-ok').textContent = 'Saved.';
      $('privacy-ok').hidden = false;
    } catch (e) {
      showError($('privacy-error'), e);
    }
  }

  // ---------------------------------------------------------------- loading

  async function loadSettings() {
    const data = await api('GET', 'settings.public');
    const byId = new Map((data.settings || []).map((s) => [s._id, s.value]));
    state.settings = {
      allowChange: byId.get(SETTING_CHANGE) !== false,
      allowInvisible: byId.get(SETTING_INVISIBLE) !== false,
      privacy: byId.get(SETTING_PRIVACY) === true,
      siteName: typeof byId.get('Site_Name') === 'string' ? byId.get('Site_Name') : 'statusd',
    };
    if (state.me) applySettings();
  }

  // Events that arrive while the list is being read are applied again afterwards,
  // so a slower answer cannot undo a newer live change.
  let replay = null;

  async function loadUsers() {
    replay = [];
    try {
      await readUsers();
    } finally {
      const missed = replay;
      replay = null;
      for (const args of missed) statusEvent(args);
    }
  }

  async function readUsers() {
    const all = [];
    let offset = 0;
    for (;;) {
      const page = await api('GET', 'users.list?count=100&offset=' + offset);
      all.push(...(page.users || []));
      offset += (page.users || []).length;
      if (!page.users || page.users.length === 0 || offset >= page.total) break;
    }
    const known = state.users;
    state.users = new Map();
    for (const u of all) {
      const old = known.get(u._id);
      if (old && !u.statusDefault && old.statusDefault) u.statusDefault = old.statusDefault;
      state.users.set(u._id, u);
    }
    if (state.me) {
      const me = state.users.get(state.me._id);
      if (me && !me.statusDefault) me.statusDefault = state.me.statusDefault;
    }
  }

  async function loadPermissions() {
    const data = await api('GET', 'permissions.listAll');
    const perm = (data.update || []).find((p) => p._id === 'edit-other-user-info');
    const roles = (state.me && state.me.roles) || [];
    state.canEditOthers = !!perm && perm.roles.some((r) => roles.includes(r));
  }

  async function openApp() {
    const me = await api('GET', 'me');
    state.me = me;
    state.target = me._id;
    state.dndDirty = false;
    await Promise.all([
      loadSettings(),
      loadPermissions(),
      loadUsers(),
      loadQuick(),
      loadPrivacy().catch(() => {}),
      loadDnd().catch(() => {}),
    ]);
    $('signin').hidden = true;
    $('app').hidden = false;
    $('whoami').hidden = false;
    $('live').hidden = false;
    $('me-label').textContent = 'Signed in as ' + (me.name || me.username);
    hide($('status-error'), $('status-ok'), $('list-error'));
    applySettings();
    renderTargets();
    fillEditor();
    renderQuick();
    renderPeople();
    renderDnd();
    live.start();
  }

  async function refreshAfterGap() {
    try {
      await loadUsers();
      renderTargets();
      renderPeople();
      hide($('list-error'));
    } catch (e) {
      showError($('list-error'), e);
    }
  }

  // --------------------------------------------------------------- realtime

  const live = {
    ws: null,
    wanted: false,
    retry: 0,
    timer: null,

    setState(s, text) {
      $('live').dataset.state = s;
      $('live-text').textContent = text;
    },

    start() {
      this.wanted = true;
      this.retry = 0;
      this.connect();
    },

    stop() {
      this.wanted = false;
      clearTimeout(this.timer);
      if (this.ws) {
        const ws = this.ws;
        this.ws = null;
        ws.onclose = null;
        ws.close();
      }
    },

    send(frame) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
    },

    connect() {
      const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/websocket';
      const ws = new WebSocket(url);
      this.ws = ws;
      this.setState('retry', 'Connecting…');
      ws.onopen = () => {
        // Frames are handled in order: login, then the subscription.
        this.send({ msg: 'connect', version: '1', support: ['1'] });
        this.send({ msg: 'method', method: 'login', id: 'login', params: [{ resume: state.session.authToken }] });
        this.send({ msg: 'sub', id: 'user-status', name: 'stream-notify-logged', params: ['user-status', false] });
      };
      ws.onmessage = (ev) => {
        let f;
        try {
          f = JSON.parse(ev.data);
        } catch (_) {
          return;
        }
        this.frame(f);
      };
      ws.onclose = () => {
        if (this.ws !== ws) return;
        this.ws = null;
        if (!this.wanted) return;
        const wait = Math.min(15000, 1000 * 2 ** this.retry++);
        this.setState('retry', 'Reconnecting…');
        this.timer = setTimeout(() => this.connect(), wait);
      };
    },

    frame(f) {
      switch (f.msg) {
        case 'ping':
          this.send(f.id === undefined ? { msg: 'pong' } : { msg: 'pong', id: f.id });
          break;
        case 'result':
          if (f.id === 'login' && f.error) {
            this.stop();
            saveSession(null);
            showSignIn('Your session has ended (' + (f.error.reason || 'logged out') + '). Please sign in again.');
          }
          break;
        case 'ready':
          if ((f.subs || []).includes('user-status')) {
            this.setState('on', 'Live');
            // Events from before the subscription (our own connection coming online
            // included, or a reconnect's gap) were not sent: read the list again.
            refreshAfterGap();
            this.retry = 0;
          }
          break;
        case 'nosub':
          if (f.id === 'user-status' && f.error) {
            this.setState('retry', 'Not receiving updates');
            showError($('list-error'), f.error.reason || f.error.message || 'The live updates were refused.');
          }
          break;
        case 'changed':
          if (f.collection === 'stream-notify-logged' && f.fields && f.fields.eventName === 'user-status') {
            for (const args of f.fields.args || []) statusEvent(args);
          }
          break;
        default:
          break;
      }
    },
  };

  // args: [uid, username, code, statusText, name, roles, statusSource?, statusExpiresAt?]
  function statusEvent(args) {
    if (!Array.isArray(args) || args.length < 4) return;
    if (replay) replay.push(args);
    const [uid, username, code, text, name] = args;
    const status = STATUS_BY_CODE[code] || 'offline';
    let u = state.users.get(uid);
    if (!u) {
      u = { _id: uid, username, name: name || username, active: true };
      state.users.set(uid, u);
      renderTargets();
    }
    u.username = username || u.username;
    if (name) u.name = name;
    if (status !== 'offline') u.statusd = undefined;
    else if (u.status !== 'offline') refreshLastSeen(uid);
    u.status = status;
    u.statusText = text || '';
    u.statusSource = args.length > 6 ? args[6] : undefined;
    u.statusExpiresAt = args.length > 7 ? args[7] : null;
    renderPeople(uid);
    if (state.me && uid === state.me._id) {
      renderDnd();
      dndSoon();
    }
    if (uid === state.target && !state.dirty) {
      if (status !== 'offline' && status !== 'away') u.statusDefault = status;
      fillEditor();
    }
  }

  // ------------------------------------------------------------------ forms

  async function onSignIn(ev) {
    ev.preventDefault();
    const user = $('signin-user').value.trim();
    const password = $('signin-password').value;
    const err = $('signin-error');
    err.hidden = true;
    if (!user || !password) {
      showError(err, 'Enter your username (or email) and your password.');
      return;
    }
    $('signin-button').disabled = true;
    try {
      const data = await api('POST', 'login', { user, password });
      saveSession({ userId: data.data.userId, authToken: data.data.authToken });
      $('signin-password').value = '';
      await openApp();
    } catch (e) {
      saveSession(null);
      const words = e.status === 401 && /^Unauthorized$/i.test(e.message)
        ? 'Wrong username or password (the server said: Unauthorized).'
        : e.message;
      showError(err, words);
    } finally {
      $('signin-button').disabled = false;
    }
  }

  let okTimer = null;

  async function onSave(ev) {
    ev.preventDefault();
    const err = $('status-error');
    const ok = $('status-ok');
    hide(err, ok);
    const checked = document.querySelector('input[name="status"]:checked');
    const body = { message: $('message').value };
    if (checked) body.status = checked.value;
    let expires;
    try {
      expires = chosenExpiry();
    } catch (e) {
      showError(err, e);
      return;
    }
    if (expires) body.expiresAt = expires.toISOString();
    const target = state.target;
    if (target !== state.me._id) body.userId = target;
    $('save').disabled = true;
    try {
      await api('POST', 'users.setStatus', body);
      const u = state.users.get(target);
      if (u && body.status) u.statusDefault = body.status;
      const who = target === state.me._id ? 'Your status' : 'The status of ' + ((u && (u.name || u.username)) || 'that user');
      ok.textContent = who + ' is saved' + (expires ? ' until ' + when(expires) : '') + '.';
      ok.hidden = false;
      clearTimeout(okTimer);
      okTimer = setTimeout(() => (ok.hidden = true), 8000);
      state.dirty = false;
      if (target === state.me._id) loadQuick().catch(() => {});
    } catch (e) {
      if (e.status === 401) {
        saveSession(null);
        showSignIn('Your session has ended. Please sign in again.');
        return;
      }
      showError(err, e);
    } finally {
      $('save').disabled = false;
    }
  }

  async function onSignOut() {
    try {
      await api('POST', 'logout');
    } catch (_) {
      // signed out locally either way
    }
    saveSession(null);
    showSignIn();
  }

  // ------------------------------------------------------------------ start

  function wire() {
    $('signin-form').addEventListener('submit', onSignIn);
    $('status-form').addEventListener('submit', onSave);
    $('privacy-form').addEventListener('submit', onPrivacySave);
    $('sign-out').addEventListener('click', onSignOut);
    $('filter').addEventListener('input', () => renderPeople());
    $('expiry').addEventListener('change', () => {
      state.dirty = true;
      updateExpiryHint();
      if ($('expiry').value === 'custom') $('expiry-at').focus();
    });
    $('expiry-at').addEventListener('input', updateExpiryHint);
    $('dnd-form').addEventListener('submit', onDndSave);
    $('dnd-clear').addEventListener('click', onDndClear);
    $('dnd-form').addEventListener('input', () => (state.dndDirty = true));
    $('message').addEventListener('input', () => (state.dirty = true));
    for (const r of document.querySelectorAll('input[name="status"]')) {
      r.addEventListener('change', () => (state.dirty = true));
    }
    $('target').addEventListener('change', () => {
      state.target = $('target').value;
      hide($('status-error'), $('status-ok'));
      fillEditor();
      renderQuick();
    });
    // Settings can change while the page is open: look again now and then.
    const refresh = () => {
      if (state.me) loadSettings().catch(() => {});
    };
    window.addEventListener('focus', refresh);
    setInterval(refresh, 30000);
    // Keep "until …" and "last seen …" labels current.
    setInterval(() => {
      if (state.me) {
        renderPeople();
        loadDnd().catch(() => {});
      }
    }, 60000);
  }

  async function start() {
    wire();
    try {
      await loadSettings();
      $('site-name').textContent = state.settings.siteName;
    } catch (_) {
      // shown again once signed in
    }
    state.session = loadSession();
    if (!state.session) {
      showSignIn();
      return;
    }
    try {
      await openApp();
    } catch (e) {
      if (e.status === 401) {
        saveSession(null);
        showSignIn('Your session has ended. Please sign in again.');
      } else {
        showSignIn(e);
      }
    }
  }

  start();
})();
