// The presence board: every user's merged telephony and rich presence,
// live from the feed. Changes are gathered and applied once per animation
// frame; only one page of rows is in the DOM (1,000 users stay cheap), and
// rows are updated in place so keyboard focus stays where it is.
import { call, get, seg } from './api.js';
import { h, clear, field, input, select, dialog, table, toast, fmtTime, action, showError } from './dom.js';
import { STATES, LINES, badge, activityText, inCall, forwardText, calendarText, forText } from './states.js';
import { Feed } from './feed.js';

const PER_PAGE = 100;
const RICH = ['available', 'away', 'busy', 'do-not-disturb', 'offline', 'unknown', 'access-denied', 'error',
  'not-found', 'not-requested', 'requesting', 'server-not-configured', 'not-configured'];
const TEL = ['available', 'busy', 'do-not-disturb', 'forwarded-to-voicemail', 'forwarded-to-number', 'offline',
  'unknown', 'access-denied', 'error', 'not-found', 'not-requested', 'requesting', 'server-not-configured',
  'not-configured'];

export class Board {
  constructor(role, feedStatus) {
    this.role = role;
    this.users = new Map();
    this.pending = new Map();
    this.touched = new Set();
    this.frame = 0;
    this.page = 0;
    this.rows = new Map();
    this.visible = [];
    this.departments = new Set();
    this.filter = { q: '', department: '', rich: '', telephony: '', inCall: false };
    this.stats = { frames: 0, changes: 0, maxMs: 0, totalMs: 0 };
    this.feedStatus = feedStatus;
    this.feed = new Feed({
      snapshot: (users) => this.snapshot(users),
      change: (ev) => this.change(ev),
      status: (text, ok) => feedStatus(text, ok),
    });
    this.root = this.build();
    this.feed.start();
    // Durations ("on the phone for 4 min") move on without a change.
    this.sinceTimer = setInterval(() => this.tickSince(), 15000);
    // The test kit and the curious can reach the board from the console.
    window.presenceBoard = this;
  }

  destroy() {
    this.feed.stop();
    clearInterval(this.sinceTimer);
    document.removeEventListener('keydown', this.onKey);
    cancelAnimationFrame(this.frame);
    if (window.presenceBoard === this) delete window.presenceBoard;
  }

  build() {
    const f = this.filter;
    const q = input({ type: 'search', name: 'q', placeholder: 'name or extension ( / )', autocomplete: 'off', 'aria-keyshortcuts': '/' });
    this.search = q;
    // "/" jumps to the search box from anywhere on the board.
    this.onKey = (e) => {
      if (e.key === '/' && !e.ctrlKey && !e.metaKey && !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName)
        && !document.querySelector('dialog[open]')) {
        e.preventDefault();
        q.focus();
      }
    };
    document.addEventListener('keydown', this.onKey);
    const onQ = () => {
      const v = q.value.trim().toLowerCase();
      if (v !== f.q) { f.q = v; this.refilter(); }
    };
    q.addEventListener('input', onQ);
    q.addEventListener('change', onQ);
    this.deptSelect = select('department', [['', 'All departments']], '');
    this.deptSelect.addEventListener('change', () => { f.department = this.deptSelect.value; this.refilter(); });
    const rich = select('rich', [['', 'Any rich state'], ...RICH.map((s) => [s, STATES[s][0]])], '');
    rich.addEventListener('change', () => { f.rich = rich.value; this.refilter(); });
    const tel = select('telephony', [['', 'Any telephony state'], ...TEL.map((s) => [s, STATES[s][0]])], '');
    tel.addEventListener('change', () => { f.telephony = tel.value; this.refilter(); });
    const only = input({ type: 'checkbox', name: 'in_call' });
    only.addEventListener('change', () => { f.inCall = only.checked; this.refilter(); });
    this.inCallCount = h('strong#in-call-count', '0');
    this.summary = h('p.summary#board-summary', { 'aria-live': 'polite' });
    this.tbody = h('tbody#board-rows');
    this.pager = h('div.pager');
    const form = h('form.filters#board-filters', { role: 'search', 'aria-label': 'Filter the board', on: { submit: (e) => e.preventDefault() } },
      field('Search', q, { name: 'q' }),
      field('Department', this.deptSelect),
      field('Rich presence', rich),
      field('Telephony', tel),
      field('Only people in a call', only));
    return h('section.board', { 'aria-labelledby': 'board-title' },
      h('div.section-head', h('h2#board-title', 'Presence board'),
        h('p.in-call-now', h('span.icon', { 'aria-hidden': 'true' }, '☎'), ' In a call right now: ', this.inCallCount)),
      form, this.summary,
      h('table.board-table', { 'aria-describedby': 'board-summary' },
        h('caption.sr-only', 'Merged presence per user'),
        h('thead', h('tr', ['Person', 'Department', 'Extension', 'Telephony', 'Rich presence', 'Note', 'Actions']
          .map((x) => h('th', { scope: 'col' }, x)))),
        this.tbody),
      this.pager);
  }

  snapshot(users) {
    this.snapshots = (this.snapshots || 0) + 1;
    this.pending.clear();
    this.users = new Map(users.map((u) => [u.username, u]));
    for (const u of users) this.touched.add(u.username);
    this.full = true;
    this.schedule();
  }

  change(ev) {
    if (ev.type === 'removed') this.pending.set(ev.username, null);
    else if (ev.type === 'presence') this.pending.set(ev.username, ev);
    this.schedule();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  refilter() {
    this.page = 0;
    this.full = true;
    this.schedule();
  }

  /** Apply everything that arrived since the last frame, once. */
  flush() {
    this.frame = 0;
    const started = performance.now();
    const now = Date.now();
    const changed = new Set(this.touched);
    this.touched.clear();
    for (const [name, u] of this.pending) {
      if (u === null) this.users.delete(name);
      else this.users.set(name, u);
      changed.add(name);
    }
    this.pending.clear();
    for (const u of this.users.values()) if (u.department) this.departments.add(u.department);
    this.syncDepartments();
    const list = this.filtered();
    const pages = Math.max(1, Math.ceil(list.length / PER_PAGE));
    if (this.page >= pages) this.page = pages - 1;
    const slice = list.slice(this.page * PER_PAGE, (this.page + 1) * PER_PAGE);
    const names = slice.map((u) => u.username);
    const same = names.length === this.visible.length && names.every((n, i) => n === this.visible[i]);
    for (const u of slice) {
      if (changed.has(u.username) || !this.rows.has(u.username)) this.renderRow(u, changed.has(u.username) ? now : null);
    }
    if (!same) {
      this.tbody.replaceChildren(...slice.map((u) => this.rows.get(u.username)));
      this.visible = names;
    }
    // Forget rows of users that left.
    for (const name of this.rows.keys()) if (!this.users.has(name)) this.rows.delete(name);
    let calls = 0;
    for (const u of this.users.values()) if (inCall(u)) calls++;
    this.inCallCount.textContent = String(calls);
    const summary = `${list.length} of ${this.users.size} people shown${pages > 1 ? `, page ${this.page + 1} of ${pages}` : ''}.`;
    // Only when it changes: it is a live region.
    if (this.summary.textContent !== summary) this.summary.textContent = summary;
    this.renderPager(pages);
    this.full = false;
    // How long a frame's batch took (the tests print it).
    const ms = performance.now() - started;
    const st = this.stats;
    st.frames++;
    st.changes += changed.size;
    st.maxMs = Math.max(st.maxMs, ms);
    st.totalMs += ms;
  }

  syncDepartments() {
    const have = new Set([...this.deptSelect.options].map((o) => o.value));
    for (const d of [...this.departments].sort()) {
      if (!have.has(d)) this.deptSelect.append(h('option', { value: d }, d));
    }
  }

  filtered() {
    const f = this.filter;
    const out = [];
    for (const u of this.users.values()) {
      if (f.q && !(u.username.toLowerCase().includes(f.q) || (u.display_name || '').toLowerCase().includes(f.q)
        || (u.extension || '').includes(f.q))) continue;
      if (f.department && u.department !== f.department) continue;
      if (f.rich && u.rich.state !== f.rich) continue;
      if (f.telephony && u.telephony.state !== f.telephony) continue;
      if (f.inCall && !inCall(u)) continue;
      out.push(u);
    }
    out.sort((a, b) => (a.display_name || a.username).localeCompare(b.display_name || b.username));
    return out;
  }

  renderPager(pages) {
    if (pages <= 1) {
      this.pager.replaceChildren();
      return;
    }
    const go = (p) => { this.page = p; this.full = true; this.schedule(); };
    clear(this.pager,
      h('button', { type: 'button', disabled: this.page === 0, on: { click: () => go(this.page - 1) } }, '← Previous'),
      h('span', ` Page ${this.page + 1} of ${pages} `),
      h('button', { type: 'button', disabled: this.page >= pages - 1, on: { click: () => go(this.page + 1) } }, 'Next →'));
  }

  renderRow(u, changedAt) {
    let row = this.rows.get(u.username);
    if (!row) {
      row = h('tr', { dataset: { user: u.username } },
        h('th', { scope: 'row' }), h('td'), h('td'), h('td.tel'), h('td.rich'), h('td.note'),
        h('td.actions', this.actions(u.username)));
      this.rows.set(u.username, row);
    }
    const c = row.children;
    const calling = inCall(u);
    row.classList.toggle('in-call', calling);
    const forced = u.forced_until_ms && u.forced_until_ms > Date.now();
    clear(c[0], calling ? h('span.call-mark', { title: 'In a call', 'aria-label': 'In a call' }, '☎ ') : null,
      h('span.name', u.display_name || u.username), h('span.username', u.username),
      forced ? h('span.forced', { title: `Force-subscribed until ${fmtTime(u.forced_until_ms)}` }, 'subscribed') : null);
    clear(c[1], u.department || '');
    clear(c[2], u.extension || '');
    const t = u.telephony || {};
    const tExtra = [t.line && t.line !== 'idle' ? LINES[t.line] || t.line : null, forwardText(t.forward_to)].filter(Boolean).join(', ');
    clear(c[3], badge(t.state, tExtra), sinceTag(t.since_ms), t.source ? h('span.source', ` via ${t.source}`) : null);
    c[3].dataset.state = t.state || '';
    const r = u.rich || {};
    const day = calendarText(u.calendar);
    clear(c[4], badge(r.state, activityText(r.activity)), sinceTag(r.since_ms), r.source ? h('span.source', ` via ${r.source}`) : null,
      day ? h('span.calendar', { title: `Calendar via ${u.calendar.source}` }, day) : null);
    c[4].dataset.state = r.state || '';
    const notes = (u.notes || []).map((n) => n.text);
    clear(c[5], r.note ? h('span', r.note) : null, notes.length ? h('span.op-notes', { title: 'Operators\' notes' }, ` ✎ ${notes.join(' · ')}`) : null);
    if (changedAt) row.dataset.updatedAt = String(changedAt);
  }

  /** Refresh every shown duration (the rows themselves change only on events). */
  tickSince() {
    for (const el of this.tbody.querySelectorAll('span.since')) el.textContent = ` ${forText(Number(el.dataset.since))}`;
  }

  actions(username) {
    const out = [h('button.small', { type: 'button', on: { click: () => this.details(username) }, 'aria-label': `Details for ${username}` }, 'Why?')];
    if (this.role !== 'console') {
      out.push(' ', action('Subscribe 1 min', async () => {
        const r = await call('POST', `users/${seg(username)}/subscribe`);
        toast(`${username}: subscribed anew on every connector until ${new Date(r.until_ms).toLocaleTimeString()}`);
        const u = this.users.get(username);
        if (u) {
          u.forced_until_ms = r.until_ms;
          this.touched.add(username);
          this.schedule();
          setTimeout(() => { this.touched.add(username); this.schedule(); }, Math.max(0, r.until_ms - Date.now()) + 100);
        }
      }, { class: 'small', 'aria-label': `Force-subscribe ${username} for one minute`, dataset: { subscribe: username } }));
    }
    return out;
  }

  /** The detail: every source's report, why the winner won, sync, notes. */
  async details(username) {
    let d;
    try {
      d = await get(`presence/${seg(username)}`);
    } catch (e) {
      toast(e.message, 'error');
      return;
    }
    const sources = table('Sources', ['Instance', 'Technology', 'Endpoint', 'Channel', 'Endpoint state', 'Telephony', 'Rich', 'Observed', 'Raw'],
      d.sources.map((s) => {
        const o = s.observed || {};
        const t = o.telephony;
        const r = o.rich;
        return h('tr',
          h('td', s.instance, s.running ? '' : ' (not running)'), h('td', s.technology), h('td', s.endpoint), h('td', s.channel),
          h('td', o.state || '—', o.state_detail ? ` (${o.state_detail})` : ''),
          h('td', t ? [LINES[t.line] || t.line, t.do_not_disturb ? ', DND' : '', t.forward ? `, forward ${JSON.stringify(t.forward)}` : '', t.source ? ` [${t.source}]` : ''] : '—'),
          h('td', r ? [r.availability, r.activity ? `, ${activityText(r.activity)}` : '', r.note ? ` “${r.note}”` : ''] : '—'),
          h('td', fmtTime(o.observed_at_ms)),
          h('td', (o.raw || []).map(([k, v]) => `${k}=${v}`).join(' ') || '—'));
      }));
    const reasons = d.reasons && d.reasons.length ? h('ul.reasons', d.reasons.map((r) => h('li', r)))
      : h('p', 'One source, or the most recent report won (no rule had to decide).');
    const sync = d.sync || { enabled: false, platforms: [] };
    const syncTable = table(`Sync ${sync.enabled ? 'on' : 'off'} for this user`, ['Instance', 'Endpoint', 'Leading', 'In a conversation', 'Hub holds', 'Write', 'Profile', 'Detail'],
      (sync.platforms || []).map((p) => h('tr', h('td', p.instance), h('td', p.endpoint || '—'), h('td', p.leader ? 'yes' : 'no'),
        h('td', p.in_conversation ? `yes${p.conversation ? ` (${p.conversation})` : ''}` : 'no'),
        h('td', p.hold), h('td', p.write_id ?? '—'), h('td', p.profile || '—'), h('td', p.detail || ''))), { class: 'sync-table' });
    const notes = h('div.notes');
    this.renderNotes(notes, username, d.notes || []);
    dialog(`${d.display_name || username} (${username})`,
      h('div.detail-states', h('p', 'Telephony: ', badge(d.telephony.state, LINES[d.telephony.line]), d.telephony.source ? ` from ${d.telephony.source}` : ''),
        h('p', 'Rich: ', badge(d.rich.state, activityText(d.rich.activity)), d.rich.source ? ` from ${d.rich.source}` : '')),
      h('h3', 'Why these states'), reasons, sources, syncTable, h('h3', 'Notes'), notes);
  }

  renderNotes(box, username, list) {
    const canEdit = this.role !== 'console';
    const items = list.length ? h('ul.note-list', list.map((n) => h('li', n.text, h('span.meta', ` — ${n.author}, ${fmtTime(n.at_ms)}${n.expires_at_ms ? `, until ${fmtTime(n.expires_at_ms)}` : ''} `),
      canEdit ? action('Remove', async () => {
        await call('DELETE', `users/${seg(username)}/notes/${n.id}`);
        this.renderNotes(box, username, list.filter((x) => x.id !== n.id));
      }, { class: 'small' }) : null))) : h('p', 'No notes.');
    if (!canEdit) {
      clear(box, items);
      return;
    }
    const text = input({ name: 'text', maxlength: 500 });
    const hours = input({ type: 'number', name: 'expires_at_ms', min: 1, max: 720, placeholder: 'never' });
    const form = h('form.inline', {
      on: {
        submit: async (e) => {
          e.preventDefault();
          const body = { text: text.value };
          if (hours.value) body.expires_at_ms = Date.now() + Number(hours.value) * 3600_000;
          try {
            const n = await call('POST', `users/${seg(username)}/notes`, body);
            this.renderNotes(box, username, [...list, n]);
          } catch (err) {
            showError(form, err);
          }
        },
      },
    }, field('New note', text, { name: 'text', required: true }), field('Expires after (hours)', hours, { name: 'expires_at_ms' }),
    h('button', { type: 'submit' }, 'Add note'));
    clear(box, items, form);
  }
}

/** A state's duration beside its badge, kept current by `tickSince`. */
function sinceTag(ms) {
  return ms ? h('span.since', { dataset: { since: String(ms) }, title: `Since ${fmtTime(ms)}` }, ` ${forText(ms)}`) : null;
}
