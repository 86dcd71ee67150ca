// Script of the kitchen display; served as a file so the page's content security policy
// needs no inline script.
const siteId = decodeURIComponent(location.pathname.split('/').pop());
const $ = (id) => document.getElementById(id);
const orders = new Map();
let socket;
$('site').textContent = siteId;
const token = () => localStorage.getItem('kioskhub.token');
const api = (path, init = {}) =>
  fetch(path, {
    ...init,
    headers: {
      authorization: 'Bearer ' + token(),
      'content-type': 'application/json',
      ...(init.headers || {}),
    },
  });
function card(o) {
  const li = document.createElement('li');
  li.className = 'card';
  li.dataset.orderId = o.orderId || o.id;
  const items = (o.items || []).map((i) => `<li>${i.qty} × ${escapeHtml(i.name || i.sku)}</li>`).join('');
  li.innerHTML =
    `<h2>#${escapeHtml(o.orderNumber || '')}</h2><time>${new Date(o.paidAt || Date.now()).toLocaleTimeString()}</time>` +
    (o.customerName ? `<div>${escapeHtml(o.customerName)}</div>` : '') +
    `<ul>${items}</ul>`;
  const btn = document.createElement('button');
  btn.textContent = 'Mark ready';
  btn.setAttribute('aria-label', 'Mark order ' + (o.orderNumber || '') + ' ready');
  btn.onclick = async () => {
    btn.disabled = true;
    const r = await api('/v1/orders/' + li.dataset.orderId + '/ready', { method: 'POST', body: '{}' });
    if (r.ok) {
      seen('removed', li.dataset.orderId);
      remove(li.dataset.orderId);
    } else btn.disabled = false;
  };
  li.append(btn);
  return li;
}
function escapeHtml(s) {
  return String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
  );
}
function add(o) {
  const id = o.orderId || o.id;
  if (orders.has(id)) return;
  const li = card(o);
  orders.set(id, li);
  $('orders').append(li);
  $('empty').hidden = true;
}
function remove(id) {
  const li = orders.get(id);
  if (li) {
    li.remove();
    orders.delete(id);
  }
  $('empty').hidden = orders.size > 0;
}
// Live events seen while a load is in flight: its answer may have been read before them.
const loading = new Set();
function seen(kind, id) {
  for (const l of loading) l[kind].add(id);
}
// The board as the server has it (on sign-in and after every reconnect): orders marked ready or
// gone while the display was away are removed, new ones added; an event newer than the answer wins.
async function load() {
  const events = { added: new Set(), removed: new Set() };
  loading.add(events);
  try {
    // Every waiting order, a page at a time (a busy kitchen may have more than one page).
    const items = [];
    let cursor = null;
    do {
      const query = cursor ? '?cursor=' + encodeURIComponent(cursor) : '';
      const res = await api('/v1/kitchen/' + encodeURIComponent(siteId) + '/orders' + query);
      if (res.status === 401) return showLogin('Please sign in again.');
      if (!res.ok) return;
      const body = await res.json();
      items.push(...body.items);
      cursor = body.nextCursor;
    } while (cursor);
    const listed = new Set(items.map((o) => o.orderId || o.id));
    for (const id of [...orders.keys()]) if (!listed.has(id) && !events.added.has(id)) remove(id);
    for (const o of items) if (!events.removed.has(o.orderId || o.id)) add(o);
    $('empty').hidden = orders.size > 0;
  } finally {
    loading.delete(events);
  }
}
function start() {
  $('login').hidden = true;
  $('board').hidden = false;
  $('error').textContent = '';
  socket = io('/live', { auth: { token: token() }, transports: ['websocket'] });
  socket.on('connect', () => {
    $('conn').textContent = 'live';
    socket.emit('subscribe', { room: 'kitchen:' + siteId }, () => load());
  });
  socket.on('disconnect', () => {
    $('conn').textContent = 'reconnecting…';
  });
  // Only a refused sign-in goes back to the form; a network blip or a server restart just reconnects.
  socket.on('connect_error', (err) => {
    if (err && err.message === 'unauthorized') showLogin('Sign-in expired or not allowed.');
    else $('conn').textContent = 'reconnecting…';
  });
  socket.on('order_created', (o) => {
    seen('added', o.orderId || o.id);
    add(o);
  });
  socket.on('kitchen_order_ready', (o) => {
    seen('removed', o.orderId);
    remove(o.orderId);
  });
  // Refunded in full before it was made: off the board, nothing to cook.
  socket.on('kitchen_order_cancelled', (o) => {
    seen('removed', o.orderId);
    remove(o.orderId);
  });
}
function showLogin(message) {
  if (socket) socket.close();
  $('board').hidden = true;
  $('login').hidden = false;
  $('error').textContent = message || '';
}
$('login').onsubmit = async (e) => {
  e.preventDefault();
  const res = await fetch('/v1/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: $('email').value, password: $('password').value }),
  });
  if (!res.ok) return showLogin('Wrong email or password.');
  localStorage.setItem('kioskhub.token', (await res.json()).token);
  start();
};
$('useToken').onclick = () => {
  localStorage.setItem('kioskhub.token', $('adminToken').value);
  start();
};
// Sign out ends this screen's session on the server (a copied token stops working too), then
// forgets it; ADMIN_TOKEN is no session (403) and is only forgotten.
$('logout').onclick = async () => {
  $('logout').disabled = true;
  let message = '';
  try {
    const res = await api('/v1/auth/session', { method: 'DELETE', body: '{}' });
    if (res.status >= 500 || res.status === 409)
      message = 'Signed out on this screen only: the session stays valid on the server until it expires.';
  } catch {
    message = 'Signed out on this screen only: the server could not be reached.';
  }
  localStorage.removeItem('kioskhub.token');
  $('logout').disabled = false;
  showLogin(message);
};
if (token()) start();
else showLogin('');
