// Script of the customer cash screen; served as a file so the page's content security policy
// needs no inline script.
const orderNumber = decodeURIComponent(location.pathname.split('/').pop());
const token = new URLSearchParams(location.search).get('token') || '';
const $ = (id) => document.getElementById(id);
// The site's currency comes with the session status (₱ for the kiosks this screen was built for).
let currency = 'PHP';
const money = (v) => {
  if (typeof v !== 'number') return '–';
  try {
    return new Intl.NumberFormat(navigator.language || 'en', { style: 'currency', currency }).format(v);
  } catch {
    return v.toFixed(2);
  }
};
$('orderNumber').textContent = orderNumber;
// A session only moves forward: cash inserted grows while it is PENDING, then it ends PAID or
// CANCELLED for good. A status answer read before a live update can arrive after it; it is older,
// and is not shown over it.
let shown = null;
const older = (s) =>
  shown !== null &&
  (shown.status !== 'PENDING' || (s.status === 'PENDING' && s.amountInserted < shown.amountInserted));
function render(s) {
  // The currency is the site's, whatever the answer's age (a live update may come first): the
  // session shown is drawn again in it.
  if (typeof s.currency === 'string' && s.currency !== currency) {
    currency = s.currency;
    if (older(s)) return draw(shown);
  }
  if (older(s)) return;
  shown = s;
  draw(s);
}
function draw(s) {
  $('total').textContent = money(s.totalRequired);
  $('inserted').textContent = money(s.amountInserted);
  $('remaining').textContent = money(s.remainingAmount);
  $('change').textContent = money(s.change ?? 0);
  const pct = s.totalRequired ? Math.min(100, (100 * s.amountInserted) / s.totalRequired) : 0;
  $('progress').style.width = pct + '%';
  $('progress').style.background = s.status === 'CANCELLED' ? '#b9b9b9' : '';
  const state = $('state');
  state.className = 'state ' + s.status;
  state.textContent =
    s.status === 'PAID'
      ? s.change > 0
        ? 'Paid — please take your change: ' + money(s.change)
        : 'Paid — thank you!'
      : s.status === 'CANCELLED'
        ? s.amountInserted > 0
          ? 'Payment cancelled — ' + money(s.amountInserted) + ' will be returned'
          : 'Payment cancelled'
        : 'Waiting for cash…';
  $('title').textContent =
    s.status === 'PAID' ? 'Thank you' : s.status === 'CANCELLED' ? 'Payment cancelled' : 'Insert cash';
  document.title = $('title').textContent;
}
async function refresh() {
  const res = await fetch('/api/cash-payment/status/' + encodeURIComponent(orderNumber), {
    headers: { authorization: 'Bearer ' + token },
  });
  if (!res.ok) return invalid();
  render(await res.json());
}
const socket = io('/live', { auth: { orderToken: token }, transports: ['websocket'] });
function invalid() {
  $('state').className = 'state ERROR';
  $('state').textContent = 'This payment link is not valid.';
  $('title').textContent = 'Payment';
}
socket.on('connect', () => ($('conn').textContent = ''));
socket.on('connect', () => socket.emit('subscribe', { room: 'order:' + orderNumber }, () => refresh()));
socket.on('cash_session_updated', render);
socket.on('payment_completed', () => refresh());
// A refused token will not get better; anything else is a network blip: keep what is shown.
socket.on('connect_error', (err) => {
  if (err && err.message === 'unauthorized') invalid();
  else $('conn').textContent = 'Reconnecting…';
});
socket.on('disconnect', () => {
  $('conn').textContent = 'Reconnecting…';
});
refresh();
