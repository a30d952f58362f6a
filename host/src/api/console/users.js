// Users: search and paging, create, edit (endpoints per connector, sync),
// delete, CSV import showing every rejected row, CSV export.
import { call, get, all, seg } from './api.js';
import { h, clear, field, input, select, dialog, table, toast, action, showError, confirmDo, clearErrors } from './dom.js';

const PER_PAGE = 50;
const FIELDS = [
  ['display_name', 'Display name'],
  ['department', 'Department'],
  ['email', 'Email'],
  ['extension', 'Extension'],
  ['voicemail_number', 'Voicemail number'],
  ['sip_uri_rich', 'SIP URI (rich presence)'],
  ['sip_uri_telephony', 'SIP URI (telephony)'],
  ['teams_upn', 'Teams UPN'],
  ['lync_uri', 'Lync URI'],
];
const CSV_COLUMNS = ['username', ...FIELDS.map(([k]) => k)];

function csvCell(v) {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export class Users {
  constructor(role) {
    this.role = role;
    this.page = 1;
    this.q = '';
    const search = input({ type: 'search', name: 'q', placeholder: 'name, email, extension, department' });
    let t = 0;
    search.addEventListener('input', () => {
      clearTimeout(t);
      t = setTimeout(() => { this.q = search.value.trim(); this.page = 1; this.load(); }, 200);
    });
    this.list = h('div#user-list');
    this.importBox = h('div#import-result', { 'aria-live': 'polite' });
    const admin = role === 'admin';
    this.root = h('section', { 'aria-labelledby': 'users-title' },
      h('div.section-head', h('h2#users-title', 'Users'),
        admin ? h('button.primary', { type: 'button', on: { click: () => this.editDialog(null) } }, 'New user') : null,
        action('Export CSV', () => this.exportCsv())),
      h('form.filters', { role: 'search', on: { submit: (e) => e.preventDefault() } }, field('Search users', search, { name: 'q' })),
      admin ? this.importForm() : null,
      this.importBox,
      this.list);
    this.load();
  }

  destroy() {}

  importForm() {
    const file = input({ type: 'file', name: 'csv_file', accept: '.csv,text/csv' });
    const text = h('textarea', { name: 'csv', rows: 4, placeholder: `${CSV_COLUMNS.join(',')}\n…`, spellcheck: 'false' });
    const form = h('form.card#import-form', {
      novalidate: true,
      on: {
        submit: async (e) => {
          e.preventDefault();
          clearErrors(form);
          const body = file.files[0] ? await file.files[0].text() : text.value;
          if (!body.trim()) {
            showError(form, { field: 'csv', message: 'choose a CSV file or paste its text' });
            return;
          }
          await this.importCsv(body, form);
        },
      },
    },
    h('h3', 'Import users from CSV'),
    h('p.hint', `A header line with any of: ${CSV_COLUMNS.join(', ')}. Only the columns given change on existing users. All or nothing: if any row is rejected, nothing is imported and every rejected row is listed.`),
    field('CSV file', file, { name: 'csv_file' }),
    field('…or CSV text', text, { name: 'csv' }),
    h('button.primary', { type: 'submit' }, 'Import'));
    return form;
  }

  async importCsv(body, form) {
    clear(this.importBox);
    try {
      const r = await call('POST', 'users/import', body, 'text/csv');
      clear(this.importBox, h('p.ok', `${r.imported} users imported (${r.created} created, ${r.updated} updated, ${r.unchanged} unchanged).`));
      form.reset();
      await this.load();
    } catch (e) {
      if (e.body && Array.isArray(e.body.rejected) && e.body.rejected.length) {
        clear(this.importBox, h('div.card.rejected',
          h('p.error', { role: 'alert' }, e.message),
          table('Rejected rows', ['Row', 'Field', 'Error'],
            e.body.rejected.map((r) => h('tr', { dataset: { row: r.row } }, h('th', { scope: 'row' }, r.row), h('td', r.field), h('td', r.error))),
            { class: 'rejected-rows' })));
      } else {
        showError(form, e);
      }
    }
  }

  async load() {
    let r;
    try {
      r = await get(`users?page=${this.page}&per_page=${PER_PAGE}${this.q ? `&q=${encodeURIComponent(this.q)}` : ''}`);
    } catch (e) {
      clear(this.list, h('p.error', e.message));
      return;
    }
    const pages = Math.max(1, Math.ceil(r.total / PER_PAGE));
    const admin = this.role === 'admin';
    const rows = r.users.map((u) => h('tr', { dataset: { user: u.username } },
      h('th', { scope: 'row' }, u.username), h('td', u.display_name || ''), h('td', u.department || ''),
      h('td', u.extension || ''), h('td', u.email || u.teams_upn || ''),
      h('td', u.sync === true ? 'on' : u.sync === false ? 'off' : 'by rule', u.sync_instances ? ` (${u.sync_instances.join(', ')})` : ''),
      h('td.actions', admin ? [
        action('Edit', () => this.editDialog(u), { class: 'small', 'aria-label': `Edit ${u.username}` }), ' ',
        action('Delete', async () => {
          if (!confirmDo(`Delete user ${u.username} and their notes?`)) return;
          await call('DELETE', `users/${seg(u.username)}`);
          await this.load();
        }, { class: 'small danger', 'aria-label': `Delete ${u.username}` }),
      ] : '')));
    const go = (p) => { this.page = p; this.load(); };
    clear(this.list,
      table(`${r.total} users${this.q ? ` matching “${this.q}”` : ''}`, ['Username', 'Name', 'Department', 'Extension', 'Email / UPN', 'Sync', 'Actions'], rows, { class: 'users' }),
      pages > 1 ? h('div.pager',
        h('button', { type: 'button', disabled: this.page <= 1, on: { click: () => go(this.page - 1) } }, '← Previous'),
        ` Page ${this.page} of ${pages} `,
        h('button', { type: 'button', disabled: this.page >= pages, on: { click: () => go(this.page + 1) } }, 'Next →')) : null);
  }

  async editDialog(u) {
    const isNew = !u;
    u = u || { username: '', endpoints: {}, attributes: {} };
    let connectors = [];
    try {
      connectors = (await get('connectors')).connectors;
    } catch {
      // Without the list, endpoints per connector cannot be edited.
    }
    const ctl = {};
    const username = input({ name: 'username', value: u.username, readOnly: !isNew, autocomplete: 'off' });
    const basic = FIELDS.map(([k, label]) => {
      ctl[k] = input({ name: k, value: u[k] || '', autocomplete: 'off' });
      return field(label, ctl[k], { name: k });
    });
    const eps = connectors.map((c) => {
      const el = input({ name: `endpoints.${c.id}`, value: (u.endpoints || {})[c.id] || '', placeholder: 'from the user\'s attributes', dataset: { instance: c.id } });
      return field(`${c.id} (${c.plugin})`, el, { name: `endpoints.${c.id}` });
    });
    const attrs = h('textarea', { name: 'attributes', rows: 2, spellcheck: 'false' },
      Object.entries(u.attributes || {}).map(([k, v]) => `${k}=${v}`).join('\n'));
    const sync = select('sync', [['', 'By rule (department, then everyone)'], ['true', 'On'], ['false', 'Off']],
      u.sync === true ? 'true' : u.sync === false ? 'false' : '');
    const syncAll = input({ type: 'checkbox', name: 'sync_all', checked: !u.sync_instances });
    const syncBoxes = connectors.map((c) => {
      const b = input({ type: 'checkbox', name: 'sync_instances', value: c.id, checked: (u.sync_instances || []).includes(c.id) });
      return field(c.id, b);
    });
    const form = h('form.user-form#user-form', { novalidate: true },
      field('Username', username, { name: 'username', required: true }),
      h('fieldset', h('legend', 'Attributes'), basic),
      h('fieldset', h('legend', 'Endpoints per connector (manual override)'), eps.length ? eps : h('p', 'No connectors.')),
      field('Other attributes (name=value per line)', attrs, { name: 'attributes' }),
      h('fieldset', h('legend', 'Sync'), field('Sync for this user', sync, { name: 'sync' }),
        field('All of the user\'s platforms take part', syncAll, { name: 'sync_instances' }), syncBoxes),
      h('div.buttons', h('button.primary', { type: 'submit' }, isNew ? 'Create user' : 'Save')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(form);
      const body = { username: username.value.trim() };
      for (const [k] of FIELDS) if (ctl[k].value.trim()) body[k] = ctl[k].value.trim();
      const endpoints = {};
      for (const el of form.querySelectorAll('[data-instance]')) if (el.value.trim()) endpoints[el.dataset.instance] = el.value.trim();
      body.endpoints = endpoints;
      const a = {};
      for (const line of attrs.value.split('\n')) {
        const i = line.indexOf('=');
        if (i > 0) a[line.slice(0, i).trim()] = line.slice(i + 1).trim();
      }
      body.attributes = a;
      if (sync.value) body.sync = sync.value === 'true';
      if (!syncAll.checked) body.sync_instances = [...form.querySelectorAll('input[name="sync_instances"]:checked')].map((b) => b.value);
      try {
        if (isNew) await call('POST', 'users', body);
        else await call('PUT', `users/${seg(body.username)}`, body);
        toast(`User ${body.username} saved`);
        d.close();
        await this.load();
      } catch (err) {
        showError(form, err);
      }
    });
    const d = dialog(isNew ? 'New user' : `Edit ${u.username}`, form);
  }

  async exportCsv() {
    const users = await all('users', 'users');
    const lines = [CSV_COLUMNS.join(',')];
    for (const u of users) lines.push(CSV_COLUMNS.map((k) => csvCell(u[k])).join(','));
    const blob = new Blob([`${lines.join('\r\n')}\r\n`], { type: 'text/csv' });
    const a = h('a', { href: URL.createObjectURL(blob), download: 'users.csv' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    toast(`${users.length} users exported`);
  }
}
