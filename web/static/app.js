// The sessiongate demo page: sign in with the embedded login, open a live
// connection with @sessiongate/client, show events, watch an incident room
// (subscribe, presence, a client event), and show the end of the session
// when the server ends it (here or from another tab).

const $ = (id) => document.getElementById(id);

const ui = {
  notice: $('notice'),
  status: $('status'),
  statusDetail: $('status-detail'),
  banner: $('expired-banner'),
  bannerReason: $('expired-reason'),
  loginSection: $('login-section'),
  loginForm: $('login-form'),
  loginError: $('login-error'),
  loginSubmit: $('login-submit'),
  email: $('email'),
  password: $('password'),
  sessionSection: $('session-section'),
  userEmail: $('user-email'),
  userId: $('user-id'),
  sendIncident: $('send-incident'),
  logout: $('logout'),
  feed: $('feed'),
  feedEmpty: $('feed-empty'),
  feedCount: $('feed-count'),
  incidentSection: $('incident-section'),
  incidentState: $('incident-state'),
  incidentForm: $('incident-form'),
  incidentRoom: $('incident-room'),
  incidentOpen: $('incident-open'),
  incidentLeave: $('incident-leave'),
  incidentStatus: $('incident-status'),
  incidentError: $('incident-error'),
  incidentBody: $('incident-body'),
  watcherCount: $('watcher-count'),
  watchers: $('watchers'),
  incidentAck: $('incident-ack'),
  incidentPost: $('incident-post'),
  ackResult: $('incident-ack-result'),
  roomEvents: $('room-events'),
  roomEventsEmpty: $('room-events-empty'),
};

const FEED_MAX = 50;

/** @type {import('@sessiongate/client').Realtime | null} */
let realtime = null;
/** @type {typeof import('@sessiongate/client').createRealtime | null} */
let createRealtime = null;
/** The signed-in user, as /auth/me or the login answered. */
let me = { id: '', email: '' };
/**
 * The incident room the page watches, or asks to: `room`, whether the
 * server said ok, the function that stops its presence updates and the
 * last members it gave.
 * @type {{ room: string, ok: boolean, offPresence: (() => void) | null,
 *   presence: import('@sessiongate/client').PresenceSnapshot | null } | null}
 */
let watching = null;

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
}

function setStatus(state, detail = {}) {
  ui.status.dataset.state = state;
  ui.status.textContent = state;
  ui.statusDetail.textContent = detail.code ?? '';
}

function showSignedIn(user) {
  me = { id: String(user.id ?? ''), email: user.email ?? '' };
  ui.userEmail.textContent = me.email;
  ui.userId.textContent = me.id;
  ui.loginSection.hidden = true;
  ui.sessionSection.hidden = false;
  ui.incidentSection.hidden = false;
  loadEmails();
}

function showSignedOut() {
  stopWatching();
  ui.sessionSection.hidden = true;
  ui.incidentSection.hidden = true;
  ui.loginSection.hidden = false;
  ui.password.value = '';
}

function formatTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString();
}

/**
 * Adds an event to the top of a list (the feed or the room's events) and
 * keeps its count; server data only ever goes through textContent.
 */
function addEvent(list, kind, title, meta, createdAt) {
  const li = document.createElement('li');
  li.className = `feed-item kind-${kind}`;
  li.dataset.testid = 'feed-item';
  li.dataset.kind = kind;

  const badge = document.createElement('span');
  badge.className = 'badge';
  badge.textContent = meta;
  const text = document.createElement('span');
  text.className = 'feed-title';
  text.textContent = title;
  const time = document.createElement('time');
  time.className = 'muted';
  time.dateTime = createdAt ?? '';
  time.textContent = formatTime(createdAt ?? new Date().toISOString());

  li.append(badge, text, time);
  list.prepend(li);
  while (list.children.length > FEED_MAX) list.lastElementChild?.remove();
  renderCounts();
}

function addToFeed(kind, title, meta, createdAt) {
  addEvent(ui.feed, kind, title, meta, createdAt);
}

function renderCounts() {
  const n = ui.feed.children.length;
  ui.feedEmpty.hidden = n > 0;
  ui.feedCount.textContent = `${n} event${n === 1 ? '' : 's'}`;
  ui.roomEventsEmpty.hidden = ui.roomEvents.children.length > 0;
}

/** Emails of the demo's users by id (GET /api/demo/users), to name watchers. */
const emails = new Map();

async function loadEmails() {
  try {
    const res = await api('GET', '/api/demo/users');
    for (const u of res.ok ? (res.data?.users ?? []) : []) emails.set(String(u.id), u.email);
    if (watching?.presence) renderWatchers(watching.presence);
  } catch {
    // Watchers are then named by id.
  }
}

/** How the page names a user id: by email when the page knows it, else "user <id>". */
function userLabel(id) {
  if (id === me.id && me.email) return me.email;
  return emails.get(id) ?? `user ${id}`;
}

function setIncidentState(state, text) {
  ui.incidentState.dataset.state = state;
  ui.incidentState.textContent = text;
}

/** Shows the room's members; the page's own user is marked "(you)". */
function renderWatchers(p) {
  ui.watcherCount.textContent = String(p.count);
  ui.watcherCount.setAttribute('aria-label', `${p.count} watching`);
  const items = [...p.users]
    .sort((a, b) => (a === me.id ? -1 : b === me.id ? 1 : a.localeCompare(b, undefined, { numeric: true })))
    .map((id) => {
      const li = document.createElement('li');
      li.className = 'watcher';
      li.dataset.testid = 'watcher';
      li.dataset.user = id;
      const name = document.createElement('span');
      name.textContent = userLabel(id);
      li.append(name);
      if (id === me.id) {
        const you = document.createElement('span');
        you.className = 'muted';
        you.textContent = ' (you)';
        li.append(you);
      }
      return li;
    });
  if (p.truncated) {
    const li = document.createElement('li');
    li.className = 'muted';
    li.textContent = `and ${Math.max(p.count - p.users.length, 0)} more`;
    items.push(li);
  }
  ui.watchers.replaceChildren(...items);
}

/** Says why the watchers are not listed. */
function noPresence(why) {
  const li = document.createElement('li');
  li.className = 'muted';
  li.textContent = why;
  ui.watchers.replaceChildren(li);
  ui.watcherCount.textContent = '?';
}

function showIncidentError(text) {
  ui.incidentError.textContent = text;
  ui.incidentError.hidden = false;
}

/** The text for a refused or failed subscription. */
function subscribeErrorText(room, err) {
  const code = err?.code ?? 'ERROR';
  if (code === 'FORBIDDEN') return `You are not allowed to watch ${room} (FORBIDDEN)`;
  return `Could not watch ${room}: ${err?.message ?? String(err)} (${code})`;
}

/** Forgets the watched room (and tells the server, when connected). */
function stopWatching() {
  const w = watching;
  watching = null;
  if (w) {
    w.offPresence?.();
    realtime?.unsubscribe(w.room).catch(() => {
      // The socket leaves its rooms when it closes; nothing else to do.
    });
  }
  ui.incidentBody.hidden = true;
  ui.incidentLeave.hidden = true;
  ui.incidentStatus.textContent = '';
  ui.ackResult.textContent = '';
  ui.watchers.replaceChildren();
  ui.watcherCount.textContent = '0';
  ui.roomEvents.replaceChildren();
  renderCounts();
  setIncidentState('idle', 'not watching');
}

async function onWatch(event) {
  event.preventDefault();
  const room = ui.incidentRoom.value.trim();
  if (!realtime || !room) return;
  if (watching?.room === room) return;
  stopWatching();
  ui.incidentError.hidden = true;
  const w = { room, ok: false, offPresence: null, presence: null };
  watching = w;
  // Registered before the subscribe so that its acknowledgement's snapshot
  // is not missed.
  if (typeof realtime.onPresence === 'function') {
    w.offPresence = realtime.onPresence(room, (p) => {
      if (watching !== w) return;
      w.presence = p;
      renderWatchers(p);
    });
  } else {
    noPresence('This client does not report presence.');
  }
  setIncidentState('joining', 'joining');
  ui.incidentStatus.textContent = `Asking to watch ${room}…`;
  ui.incidentOpen.disabled = true;
  try {
    const sub = await realtime.subscribe(room);
    if (watching !== w) return;
    w.ok = true;
    // Not a presence room on this server (PRESENCE_ROOMS): nobody is listed.
    if (!sub?.presence && !w.presence) noPresence('The server does not report who watches this room.');
    setIncidentState('watching', 'watching');
    ui.incidentStatus.textContent = `watching ${room}`;
    ui.incidentBody.hidden = false;
    ui.incidentLeave.hidden = false;
  } catch (err) {
    if (watching !== w) return;
    stopWatching();
    setIncidentState('refused', err?.code === 'FORBIDDEN' ? 'forbidden' : 'failed');
    showIncidentError(subscribeErrorText(room, err));
  } finally {
    ui.incidentOpen.disabled = false;
  }
}

/** The incident id of a room "incident:<id>". */
function incidentId(room) {
  return room.startsWith('incident:') ? room.slice('incident:'.length) : room;
}

async function onAcknowledge() {
  if (!realtime || !watching?.ok) return;
  const id = incidentId(watching.room);
  ui.incidentAck.disabled = true;
  ui.ackResult.textContent = 'Acknowledging…';
  try {
    const reply = await realtime.call('incident:ack', { id });
    ui.ackResult.textContent = `acknowledged by ${reply?.ackedBy ?? 'the application'}`;
  } catch (err) {
    ui.ackResult.textContent = `Not acknowledged: ${err?.message ?? String(err)} (${err?.code ?? 'ERROR'})`;
  } finally {
    ui.incidentAck.disabled = false;
  }
}

async function onPostUpdate() {
  if (!watching?.ok) return;
  ui.incidentPost.disabled = true;
  try {
    const res = await api('POST', '/api/demo/incident', {
      room: watching.room,
      title: `Update on ${watching.room} from ${me.email || userLabel(me.id)}`,
      severity: 'medium',
    });
    if (!res.ok) showNotice(res.data?.error ?? `Could not post to the room (HTTP ${res.status}).`);
  } catch (err) {
    showNotice(`Could not post to the room: ${err.message}`);
  } finally {
    ui.incidentPost.disabled = false;
  }
}

function startRealtime() {
  if (!createRealtime) return;
  ui.banner.hidden = true;
  if (realtime) {
    realtime.connect();
    return;
  }
  realtime = createRealtime();
  realtime.onStateChange(setStatus);
  setStatus(realtime.state);
  // The connection came back but could not be recovered (away too long, or
  // the server restarted): events sent meanwhile never reached this page.
  realtime.onRecovery(({ missed }) => {
    if (missed) {
      showNotice('The connection was down for a while: events sent meanwhile may be missing here. Reload the page to see them all.');
    }
  });
  realtime.on('incident:created', (i) => {
    // A room's incidents name their room; the others came to user:<id>.
    if (i.room) {
      if (watching?.room === i.room) addEvent(ui.roomEvents, 'incident', i.title, `${i.room} · ${i.severity}`, i.createdAt);
      return;
    }
    addToFeed('incident', i.title, `incident · ${i.severity}`, i.createdAt);
  });
  realtime.onSubscriptionError((err) => {
    // A remembered room refused after a reconnection (or out of retries).
    if (watching?.room !== err.room) return;
    const room = watching.room;
    stopWatching();
    setIncidentState('refused', err.code === 'FORBIDDEN' ? 'forbidden' : 'failed');
    showIncidentError(subscribeErrorText(room, err));
  });
  realtime.on('notification', (n) => {
    addToFeed('notification', n.message, 'notification', n.createdAt);
  });
  realtime.setSessionExpiredHandler((reason) => {
    ui.bannerReason.textContent = reason;
    ui.banner.hidden = false;
    showSignedOut();
  });
}

/** Calls a JSON endpoint of the same origin with the session cookie. */
async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    credentials: 'include',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    // No JSON body (e.g. 204).
  }
  return { ok: res.ok, status: res.status, data };
}

async function onLogin(event) {
  event.preventDefault();
  ui.loginError.hidden = true;
  ui.loginSubmit.disabled = true;
  try {
    const res = await api('POST', '/auth/login', {
      email: ui.email.value.trim(),
      password: ui.password.value,
    });
    if (!res.ok) {
      ui.loginError.textContent =
        res.status === 401 ? 'Invalid email or password.' : (res.data?.error ?? `Sign-in failed (HTTP ${res.status}).`);
      ui.loginError.hidden = false;
      return;
    }
    showSignedIn(res.data?.user ?? res.data ?? {});
    startRealtime();
  } catch (err) {
    ui.loginError.textContent = `Sign-in failed: ${err.message}`;
    ui.loginError.hidden = false;
  } finally {
    ui.loginSubmit.disabled = false;
  }
}

async function onSendIncident() {
  ui.sendIncident.disabled = true;
  try {
    const res = await api('POST', '/api/demo/incident');
    if (!res.ok) showNotice(res.data?.error ?? `Could not send the test incident (HTTP ${res.status}).`);
  } catch (err) {
    showNotice(`Could not send the test incident: ${err.message}`);
  } finally {
    ui.sendIncident.disabled = false;
  }
}

async function onLogout() {
  ui.logout.disabled = true;
  // This tab leaves on its own; other tabs of the session get session_expired.
  realtime?.close();
  realtime = null;
  setStatus('disconnected');
  try {
    await api('POST', '/auth/logout', {});
  } catch (err) {
    showNotice(`Log out failed: ${err.message}`);
  } finally {
    ui.logout.disabled = false;
    showSignedOut();
  }
}

async function main() {
  ui.loginForm.addEventListener('submit', onLogin);
  ui.sendIncident.addEventListener('click', onSendIncident);
  ui.logout.addEventListener('click', onLogout);
  ui.incidentForm.addEventListener('submit', onWatch);
  ui.incidentLeave.addEventListener('click', () => {
    stopWatching();
    ui.incidentError.hidden = true;
  });
  ui.incidentAck.addEventListener('click', onAcknowledge);
  ui.incidentPost.addEventListener('click', onPostUpdate);

  try {
    ({ createRealtime } = await import('@sessiongate/client'));
  } catch (err) {
    console.error(err);
    showNotice(`The client library did not load: ${err.message}`);
    setStatus('disconnected');
  }

  let current = null;
  try {
    current = await api('GET', '/auth/me');
  } catch (err) {
    showNotice(`Could not reach the server: ${err.message}`);
  }
  if (current?.ok) {
    showSignedIn(current.data?.user ?? current.data ?? {});
    startRealtime();
  } else {
    showSignedOut();
  }
  document.body.dataset.ready = 'true';
}

main();
