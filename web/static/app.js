// The sessiongate demo page: sign in with the embedded login, open a live
// connection with @sessiongate/client, show events, and show the end of the
// session when the server ends it (here or from another tab).

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
};

const FEED_MAX = 50;

/** @type {import('@sessiongate/client').Realtime | null} */
let realtime = null;
/** @type {typeof import('@sessiongate/client').createRealtime | null} */
let createRealtime = null;

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
  ui.userEmail.textContent = user.email ?? '';
  ui.userId.textContent = String(user.id ?? '');
  ui.loginSection.hidden = true;
  ui.sessionSection.hidden = false;
}

function showSignedOut() {
  ui.sessionSection.hidden = true;
  ui.loginSection.hidden = false;
  ui.password.value = '';
}

function formatTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString();
}

/** Adds an event to the top of the feed; server data only ever goes through textContent. */
function addToFeed(kind, title, meta, createdAt) {
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
  ui.feed.prepend(li);
  while (ui.feed.children.length > FEED_MAX) ui.feed.lastElementChild?.remove();
  const n = ui.feed.children.length;
  ui.feedEmpty.hidden = n > 0;
  ui.feedCount.textContent = `${n} event${n === 1 ? '' : 's'}`;
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
  realtime.on('incident:created', (i) => {
    addToFeed('incident', i.title, `incident · ${i.severity}`, i.createdAt);
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

  try {
    ({ createRealtime } = await import('@sessiongate/client'));
  } catch (err) {
    console.error(err);
    showNotice(`The client library did not load: ${err.message}`);
    setStatus('disconnected');
  }

  let me = null;
  try {
    me = await api('GET', '/auth/me');
  } catch (err) {
    showNotice(`Could not reach the server: ${err.message}`);
  }
  if (me?.ok) {
    showSignedIn(me.data?.user ?? me.data ?? {});
    startRealtime();
  } else {
    showSignedOut();
  }
  document.body.dataset.ready = 'true';
}

main();
