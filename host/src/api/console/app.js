// The console's shell: sign-in with an API token (kept in sessionStorage
// for this tab only), the sections a role may use, hash routing (#board,
// #connectors...) so that every URL stays relative to the page.
import { token, setToken, clearToken, discoverRole, whenUnauthorized } from './api.js';
import { h, clear, showError, clearErrors } from './dom.js';
import { Board } from './board.js';
import { Connectors } from './connectors.js';
import { Plugins } from './plugins.js';
import { Users } from './users.js';
import { Rules, Sync, Tokens, Events } from './settings.js';

// Which sections each role sees: what a role cannot do is not offered.
const SECTIONS = [
  ['board', 'Presence', ['console', 'operator', 'admin'], (r, s) => new Board(r, s)],
  ['connectors', 'Connectors', ['operator', 'admin'], (r) => new Connectors(r)],
  ['plugins', 'Plugins', ['operator', 'admin'], (r) => new Plugins(r)],
  ['users', 'Users', ['operator', 'admin'], (r) => new Users(r)],
  ['rules', 'Rules', ['operator', 'admin'], (r) => new Rules(r)],
  ['sync', 'Sync', ['operator', 'admin'], (r) => new Sync(r)],
  ['events', 'Event log', ['operator', 'admin'], () => new Events()],
  ['tokens', 'API tokens', ['admin'], () => new Tokens()],
];

const $ = (id) => document.getElementById(id);
let role = null;
let current = null;

function feedStatus(text, ok) {
  const el = $('feed-status');
  el.textContent = `Feed: ${text}`;
  el.classList.toggle('ok', ok);
}

function allowed() {
  return SECTIONS.filter(([, , roles]) => roles.includes(role));
}

function show() {
  const sections = allowed();
  const want = location.hash.slice(1) || 'board';
  const found = sections.find(([id]) => id === want);
  // Another fragment (the skip link's #main) keeps the current section.
  if (!found && current && !SECTIONS.some(([id]) => id === want)) return;
  const sec = found || sections[0];
  for (const a of $('nav').querySelectorAll('a')) {
    if (a.dataset.section === sec[0]) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (current && current.id === sec[0]) return;
  if (current) current.view.destroy();
  if (sec[0] !== 'board') feedStatus('paused', false);
  const view = sec[3](role, feedStatus);
  current = { id: sec[0], view };
  clear($('view'), view.root);
  document.title = `${sec[1]} · Presence hub console`;
}

function signedIn(r) {
  role = r;
  document.body.dataset.role = r;
  $('sign-in').hidden = true;
  $('view').hidden = false;
  $('who').hidden = false;
  $('who-role').textContent = `Signed in: ${r}`;
  const nav = $('nav');
  clear(nav, h('ul', allowed().map(([id, label]) => h('li', h('a', { href: `#${id}`, dataset: { section: id } }, label)))));
  nav.hidden = false;
  show();
}

function signOut(message) {
  if (current) current.view.destroy();
  current = null;
  role = null;
  clearToken();
  delete document.body.dataset.role;
  $('nav').hidden = true;
  $('who').hidden = true;
  clear($('view'));
  $('view').hidden = true;
  $('sign-in').hidden = false;
  const form = $('sign-in-form');
  form.reset();
  clearErrors(form);
  if (message) showError(form, { field: 'token', message });
  $('token').focus();
}

async function signIn(t) {
  setToken(t);
  try {
    signedIn(await discoverRole());
  } catch (e) {
    clearToken();
    throw e;
  }
}

window.addEventListener('hashchange', () => { if (role) show(); });
whenUnauthorized(() => { if (role) signOut('The token is no longer accepted; sign in again.'); });

$('sign-in-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.target;
  clearErrors(form);
  const t = $('token').value.trim();
  if (!t) {
    showError(form, { field: 'token', message: 'Paste an API token.' });
    return;
  }
  try {
    await signIn(t);
  } catch (err) {
    showError(form, { field: 'token', message: err.status === 401 ? 'This token is not valid.' : err.message });
  }
});
$('sign-out').addEventListener('click', () => signOut());

if (token()) {
  signIn(token()).catch(() => signOut());
} else {
  $('token').focus();
}
