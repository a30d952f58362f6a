// Rules (winning technology order by drag or arrows, voicemail pilot,
// masking...), sync settings, API tokens and the event log.
import { call, get, seg } from './api.js';
import { h, clear, field, input, select, table, toast, fmtTime, action, showError, confirmDo, clearErrors, copyable } from './dom.js';

const num = (v) => (v === '' || v === null || v === undefined ? null : Number(v));

/** An ordered list editable by drag and drop and by arrow buttons. */
function orderedList(items, labelOf, onChange) {
  const ol = h('ol.ordered', { 'aria-label': 'Order of preference, first wins' });
  let dragged = null;
  const render = (focusIndex, focusWhich) => {
    clear(ol, items.map((it, i) => {
      const up = h('button.small', { type: 'button', disabled: i === 0, 'aria-label': `Move ${labelOf(it)} up`, on: { click: () => move(i, -1, 'up') } }, '↑');
      const down = h('button.small', { type: 'button', disabled: i === items.length - 1, 'aria-label': `Move ${labelOf(it)} down`, on: { click: () => move(i, 1, 'down') } }, '↓');
      const rm = h('button.small', { type: 'button', 'aria-label': `Remove ${labelOf(it)}`, on: { click: () => { items.splice(i, 1); render(); onChange(); } } }, 'Remove');
      const li = h('li', { draggable: 'true', dataset: { item: it } }, h('span.grip', { 'aria-hidden': 'true' }, '⠿ '), h('span.item-label', labelOf(it)), ' ', up, down, rm);
      li.addEventListener('dragstart', (e) => { dragged = i; e.dataTransfer.effectAllowed = 'move'; e.dataTransfer.setData('text/plain', it); });
      li.addEventListener('dragover', (e) => { e.preventDefault(); li.classList.add('drop'); });
      li.addEventListener('dragleave', () => li.classList.remove('drop'));
      li.addEventListener('drop', (e) => {
        e.preventDefault();
        li.classList.remove('drop');
        if (dragged === null || dragged === i) return;
        const [x] = items.splice(dragged, 1);
        items.splice(i, 0, x);
        dragged = null;
        render();
        onChange();
      });
      if (focusIndex === i) queueMicrotask(() => (focusWhich === 'up' && i > 0 ? up : down.disabled ? up : down).focus());
      return li;
    }));
  };
  const move = (i, d, which) => {
    const j = i + d;
    if (j < 0 || j >= items.length) return;
    [items[i], items[j]] = [items[j], items[i]];
    render(j, which);
    onChange();
  };
  render();
  return { el: ol, render };
}

export class Rules {
  constructor(role) {
    this.role = role;
    this.box = h('div');
    this.root = h('section', { 'aria-labelledby': 'rules-title' }, h('h2#rules-title', 'Merge rules'), this.box);
    this.load();
  }

  destroy() {}

  async load() {
    let rules;
    let plugins = [];
    let connectors = [];
    try {
      [rules, plugins, connectors] = await Promise.all([get('settings/rules'), get('plugins').then((r) => r.plugins),
        get('connectors').then((r) => r.connectors)]);
    } catch (e) {
      clear(this.box, h('p.error', e.message));
      return;
    }
    const admin = this.role === 'admin';
    const order = [...rules.winning_technology];
    const list = orderedList(order, (x) => x, () => {});
    const addSel = select('add_technology', [['', 'Add a plugin…'], ...plugins.map((p) => p.id)], '');
    addSel.addEventListener('change', () => {
      if (addSel.value && !order.includes(addSel.value)) {
        order.push(addSel.value);
        list.render();
      }
      addSel.value = '';
    });
    const pilot = input({ name: 'voicemail_pilot', value: rules.voicemail_pilot || '' });
    const digits = input({ type: 'number', name: 'forward_visible_digits', min: 1, value: rules.forward_visible_digits ?? '', placeholder: 'all' });
    const preferred = select('preferred_instance', [['', '(none)'], ...connectors.map((c) => c.id)], rules.preferred_instance || '');
    const stale = input({ type: 'number', name: 'stale_after_seconds', min: 1, value: rules.stale_after_seconds ?? '', placeholder: 'no limit' });
    const retention = input({ type: 'number', name: 'event_retention_days', min: 1, max: 3650, value: rules.event_retention_days });
    const instFields = connectors.map((c) => {
      const p = plugins.find((x) => x.id === c.plugin);
      const kinds = p ? p.endpoint_kinds.map((k) => [k.attribute, `${k.label} (${k.attribute})`]) : [];
      const cur = (rules.instance_fields || {})[c.id] || '';
      if (cur && !kinds.some(([a]) => a === cur)) kinds.push([cur, cur]);
      const s = select(`instance_fields.${c.id}`, [['', 'the plugin\'s default'], ...kinds], cur, { dataset: { instance: c.id } });
      return field(`${c.id} watches`, s, { name: `instance_fields.${c.id}` });
    });
    const form = h('form.rules-form#rules-form', { novalidate: true },
      h('fieldset', h('legend', 'Winning technology (rich presence)'),
        h('p.hint', 'Plugins in order of preference; drag an entry, or use the arrows. Empty: the most recent report wins.'),
        list.el, field('Add', addSel), h('div.error', { id: 'winning_technology-error', dataset: { errorFor: 'winning_technology' } })),
      field('Preferred instance', preferred, { name: 'preferred_instance' }),
      field('Voicemail pilot', pilot, { name: 'voicemail_pilot', hint: 'A forward to this number shows as "forwarded to voicemail".' }),
      field('Forward number: visible digits', digits, { name: 'forward_visible_digits', hint: 'Masking: only the last digits of a forward target are shown. Empty: all.' }),
      field('Stale after (seconds)', stale, { name: 'stale_after_seconds', hint: 'An extra time limit on every source\'s last report. Empty: none.' }),
      field('Event log kept (days)', retention, { name: 'event_retention_days' }),
      h('fieldset', h('legend', 'What each instance watches'), instFields.length ? instFields : h('p', 'No connectors.')),
      admin ? h('div.buttons', h('button.primary', { type: 'submit' }, 'Save rules')) : h('p.hint', 'Only an admin can change the rules.'));
    if (!admin) for (const el of form.querySelectorAll('input, select, button')) el.disabled = true;
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(form);
      const instance_fields = {};
      for (const s of form.querySelectorAll('select[data-instance]')) if (s.value) instance_fields[s.dataset.instance] = s.value;
      const body = {
        ...rules,
        winning_technology: order,
        preferred_instance: preferred.value || null,
        voicemail_pilot: pilot.value.trim() || null,
        forward_visible_digits: num(digits.value),
        stale_after_seconds: num(stale.value),
        event_retention_days: Number(retention.value),
        instance_fields,
      };
      try {
        rules = await call('PUT', 'settings/rules', body);
        toast('Rules saved; applied at once');
      } catch (err) {
        showError(form, err);
      }
    });
    clear(this.box, form);
  }
}

export class Sync {
  constructor(role) {
    this.role = role;
    this.box = h('div');
    this.root = h('section', { 'aria-labelledby': 'sync-title' }, h('h2#sync-title', 'Sync'),
      h('p.hint', 'While a user is in a conversation on one platform, the hub sets do-not-disturb on the user\'s other platforms and restores them when it ends.'),
      this.box);
    this.load();
  }

  destroy() {}

  async load() {
    let rules;
    let profiles;
    let connectors;
    let plugins;
    try {
      [rules, profiles, connectors, plugins] = await Promise.all([get('settings/rules'), get('sync/profiles').then((r) => r.profiles),
        get('connectors').then((r) => r.connectors), get('plugins').then((r) => r.plugins)]);
    } catch (e) {
      clear(this.box, h('p.error', e.message));
      return;
    }
    const s = rules.sync;
    const admin = this.role === 'admin';
    const everyone = input({ type: 'checkbox', name: 'everyone', checked: !!s.everyone });
    const depts = h('div.dept-list');
    const deptRow = (name, on) => {
      const n = input({ name: 'dept_name', value: name, 'aria-label': 'Department' });
      const v = select('dept_on', [['true', 'on'], ['false', 'off']], on ? 'true' : 'false', { 'aria-label': 'Sync for this department' });
      const row = h('div.dept-row', n, v, h('button.small', { type: 'button', on: { click: () => row.remove() } }, 'Remove'));
      return row;
    };
    for (const [k, v] of Object.entries(s.departments || {})) depts.append(deptRow(k, v));
    const writable = (c) => {
      const p = plugins.find((x) => x.id === c.plugin);
      return p && p.capabilities && p.capabilities.writes && p.capabilities.writes.length > 0;
    };
    const instAll = input({ type: 'checkbox', name: 'instances_all', checked: s.instances === null });
    const instBoxes = connectors.map((c) => field(`${c.id}${writable(c) ? '' : ' (cannot write)'}`,
      input({ type: 'checkbox', name: 'instances', value: c.id, checked: (s.instances || []).includes(c.id) })));
    const leadDefault = input({ type: 'checkbox', name: 'leading_default', checked: s.leading_instances === null });
    const leadBoxes = connectors.map((c) => field(c.id,
      input({ type: 'checkbox', name: 'leading_instances', value: c.id, checked: (s.leading_instances || []).includes(c.id) })));
    const profSel = connectors.map((c) => {
      const cur = (s.profiles || {})[c.id];
      const sel = select(`profiles.${c.id}`, [['', 'default (calls-and-meetings)'], ...profiles.map((p) => p.name)], (cur && cur.preset) || '', { dataset: { instance: c.id } });
      return field(`${c.id}`, sel, { name: `profiles.${c.id}` });
    });
    const lease = input({ type: 'number', name: 'lease_seconds', min: 0, max: 86400, value: s.lease_seconds });
    const form = h('form.sync-form#sync-form', { novalidate: true },
      field('Sync for everyone', everyone, { name: 'everyone' }),
      h('fieldset', h('legend', 'Departments (override "everyone"; a user\'s own switch overrides both)'), depts,
        h('button.small', { type: 'button', on: { click: () => depts.append(deptRow('', true)) } }, 'Add department'),
        h('p.error', { id: 'sync-departments-error', dataset: { errorFor: 'departments' } })),
      h('fieldset', h('legend', 'Instances that take part'), field('Every instance whose plugin can write', instAll, { name: 'instances' }), instBoxes),
      h('fieldset', h('legend', 'Leading systems for manual changes'), field('Default (instances that watch by Teams UPN)', leadDefault, { name: 'leading_instances' }), leadBoxes),
      h('fieldset', h('legend', 'What counts as a conversation, per instance'), profSel.length ? profSel : h('p', 'No connectors.'),
        h('details', h('summary', 'The profiles'), h('dl', profiles.map((p) => [h('dt', p.name), h('dd', p.description)])))),
      field('DND lease (seconds)', lease, { name: 'lease_seconds', hint: 'Each DND write lasts this long and is renewed while the conversation goes on (60-86400; 0: no expiry).' }),
      admin ? h('div.buttons', h('button.primary', { type: 'submit' }, 'Save sync settings')) : h('p.hint', 'Only an admin can change sync settings.'));
    if (!admin) for (const el of form.querySelectorAll('input, select, button')) el.disabled = true;
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(form);
      const departments = {};
      for (const row of depts.querySelectorAll('.dept-row')) {
        const [n, v] = row.querySelectorAll('input, select');
        if (n.value.trim()) departments[n.value.trim()] = v.value === 'true';
      }
      const profilesOut = {};
      for (const sel of form.querySelectorAll('select[data-instance]')) {
        const prev = (s.profiles || {})[sel.dataset.instance];
        if (sel.value) profilesOut[sel.dataset.instance] = { ...(prev || {}), preset: sel.value };
        else if (prev && (prev.line_states || prev.activities || prev.calendar_meetings !== null && prev.calendar_meetings !== undefined)) {
          profilesOut[sel.dataset.instance] = { ...prev, preset: null };
        }
      }
      const checked = (name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((b) => b.value);
      const sync = {
        everyone: everyone.checked,
        departments,
        instances: instAll.checked ? null : checked('instances'),
        leading_instances: leadDefault.checked ? null : checked('leading_instances'),
        profiles: profilesOut,
        lease_seconds: Number(lease.value),
      };
      try {
        rules = await call('PUT', 'settings/rules', { ...rules, sync });
        toast('Sync settings saved');
      } catch (err) {
        showError(form, { ...err, message: err.message, field: (err.field || '').replace(/^sync\./, '') });
      }
    });
    clear(this.box, form);
  }
}

export class Tokens {
  constructor() {
    this.list = h('div#token-list');
    this.created = h('div', { 'aria-live': 'polite' });
    const name = input({ name: 'name', maxlength: 100, autocomplete: 'off' });
    const role = select('role', [['console', 'console: read presence, follow the feed'], ['operator', 'operator: read everything, notes, force-subscribe'], ['admin', 'admin: everything']], 'console');
    const form = h('form.card.inline#token-form', {
      novalidate: true,
      on: {
        submit: async (e) => {
          e.preventDefault();
          clearErrors(form);
          try {
            const t = await call('POST', 'tokens', { name: name.value, role: role.value });
            clear(this.created, h('div.card.ok', h('p', `Token “${t.name}” (${t.role}) created. It is shown this once:`), copyable(t.token, 'the new token')));
            form.reset();
            await this.load();
          } catch (err) {
            showError(form, err);
          }
        },
      },
    }, field('Name', name, { name: 'name', required: true }), field('Role', role, { name: 'role' }), h('button.primary', { type: 'submit' }, 'Create token'));
    this.root = h('section', { 'aria-labelledby': 'tokens-title' }, h('h2#tokens-title', 'API tokens'),
      h('p.hint', 'The hub keeps only hashes; a token\'s value is shown once, when it is created.'), form, this.created, this.list);
    this.load();
  }

  destroy() {}

  async load() {
    try {
      const r = await get('tokens');
      clear(this.list, r.tokens.length ? table('Tokens', ['Name', 'Role', 'Created', 'Actions'], r.tokens.map((t) => h('tr',
        h('th', { scope: 'row' }, t.name), h('td', t.role), h('td', fmtTime(t.created_at_ms)),
        h('td', action('Revoke', async () => {
          if (!confirmDo(`Revoke token ${t.name}?`)) return;
          await call('DELETE', `tokens/${seg(t.id)}`);
          await this.load();
        }, { class: 'small danger' }))))) : h('p', 'No tokens besides the admin token.'));
    } catch (e) {
      clear(this.list, h('p.error', e.message));
    }
  }
}

export class Events {
  constructor() {
    const user = input({ name: 'user', autocomplete: 'off' });
    const connector = input({ name: 'connector', autocomplete: 'off' });
    const since = input({ type: 'datetime-local', name: 'since_ms', step: 1 });
    const until = input({ type: 'datetime-local', name: 'until_ms', step: 1 });
    const limit = input({ type: 'number', name: 'limit', min: 1, max: 10000, value: '200' });
    this.out = h('div#event-list');
    const form = h('form.filters#event-filters', {
      novalidate: true,
      on: {
        submit: (e) => {
          e.preventDefault();
          this.load(form, { user: user.value.trim(), connector: connector.value.trim(), since: since.value, until: until.value, limit: limit.value });
        },
      },
    }, field('User', user, { name: 'user' }), field('Connector', connector, { name: 'connector' }),
    field('From', since, { name: 'since_ms' }), field('To', until, { name: 'until_ms' }), field('At most', limit, { name: 'limit' }),
    h('button.primary', { type: 'submit' }, 'Show'));
    this.root = h('section', { 'aria-labelledby': 'events-title' }, h('h2#events-title', 'Event log'), form, this.out);
    this.load(form, { limit: '200' });
  }

  destroy() {}

  async load(form, f) {
    const q = new URLSearchParams();
    if (f.user) q.set('user', f.user);
    if (f.connector) q.set('connector', f.connector);
    if (f.since) q.set('since_ms', String(new Date(f.since).getTime()));
    if (f.until) q.set('until_ms', String(new Date(f.until).getTime()));
    if (f.limit) q.set('limit', f.limit);
    clearErrors(form);
    try {
      const r = await get(`events?${q}`);
      clear(this.out,
        r.dropped ? h('p.error', `${r.dropped} events could not be written (the log was too busy).`) : null,
        table(`${r.events.length} events, newest first`, ['Time', 'Kind', 'User', 'Connector', 'Detail'],
          r.events.map((e) => h('tr', { dataset: { kind: e.kind } }, h('td.time', fmtTime(e.at_ms)), h('td', e.kind), h('td', e.username || ''),
            h('td', e.instance || ''), h('td', e.detail))), { class: 'events' }));
    } catch (e) {
      showError(form, e);
    }
  }
}
