// Connector instances: status in the seeds' words and online / connected /
// offline, last error, events per minute (from the hub's own counters),
// the login step with a copy button, create from a form generated from the
// plugin's described configuration fields, enable / disable / delete,
// endpoint states with filters.
import { call, get, seg, token } from './api.js';
import { h, clear, field, input, select, dialog, table, toast, ago, fmtTime, action, showError, copyable, confirmDo, clearErrors } from './dom.js';
import { CONNECTOR_STATUS, linkBadge, LINES, activityText } from './states.js';

/** events_in_total per instance, from /metrics (Prometheus text; the token
 * is sent in case the hub wants one there, HUB_METRICS_AUTH). */
async function eventCounters() {
  const out = new Map();
  try {
    const resp = await fetch(new URL('../metrics', document.baseURI), {
      cache: 'no-store', headers: { Authorization: `Bearer ${token()}` },
    });
    const text = await resp.text();
    for (const line of text.split('\n')) {
      const m = line.match(/^presence_hub_connector_events_in_total\{([^}]*)\}\s+(\S+)/);
      if (!m) continue;
      const inst = m[1].match(/instance="([^"]*)"/);
      if (inst) out.set(inst[1], Number(m[2]));
    }
  } catch {
    // No figures; the column shows a dash.
  }
  return out;
}

export class Connectors {
  constructor(role) {
    this.role = role;
    this.samples = []; // [{at, counts: Map}] over the last minute
    this.list = h('div#connector-list');
    this.root = h('section', { 'aria-labelledby': 'conn-title' },
      h('div.section-head', h('h2#conn-title', 'Connectors'),
        role === 'admin' ? h('button.primary#new-connector', { type: 'button', on: { click: () => this.createDialog() } }, 'New connector') : null,
        action('Refresh', () => this.load())),
      this.list);
    this.load();
    this.timer = setInterval(() => this.load(), 5000);
  }

  destroy() {
    clearInterval(this.timer);
  }

  /**
   * Events per minute per instance over the last minute, from consecutive
   * samples of the hub's counters; a counter that went down (the instance
   * restarted) counts from zero, as Prometheus' rate() does.
   */
  async rates() {
    const counts = await eventCounters();
    const now = Date.now();
    this.samples.push({ at: now, counts });
    this.samples = this.samples.filter((s) => now - s.at <= 65_000);
    const rate = new Map();
    const first = this.samples[0];
    const minutes = (now - first.at) / 60_000;
    if (minutes <= 0) return rate;
    for (const inst of counts.keys()) {
      let events = 0;
      let seen = false;
      for (let i = 1; i < this.samples.length; i++) {
        const a = this.samples[i - 1].counts.get(inst);
        const b = this.samples[i].counts.get(inst);
        if (b === undefined) continue;
        if (a === undefined) {
          seen = true;
          continue;
        }
        seen = true;
        events += b >= a ? b - a : b;
      }
      if (seen) rate.set(inst, events / minutes);
    }
    return rate;
  }

  async load() {
    let conns;
    let rates;
    try {
      [conns, rates] = await Promise.all([get('connectors'), this.rates()]);
    } catch (e) {
      clear(this.list, h('p.error', e.message));
      return;
    }
    const statuses = await Promise.all(conns.connectors.map((c) => get(`connectors/${seg(c.id)}/status`).catch(() => null)));
    const rows = conns.connectors.map((c, i) => this.row(c, statuses[i], rates));
    const focused = document.activeElement && document.activeElement.closest('#connector-list') ? document.activeElement.dataset.key : null;
    clear(this.list, conns.connectors.length
      ? table('Connector instances', ['Instance', 'Plugin', 'Status', 'Link', 'Last error', 'Events / min', 'Actions'], rows, { class: 'connectors' })
      : h('p', 'No connector instances yet.'));
    if (focused) {
      const el = this.list.querySelector(`[data-key="${CSS.escape(focused)}"]`);
      if (el) el.focus();
    }
  }

  row(c, st, rates) {
    const s = (st && st.status) || c.status || {};
    const rate = rates.get(c.id);
    const login = s.login_step;
    const statusCell = h('td.status',
      h('span', CONNECTOR_STATUS[s.status] || s.status || '—'),
      s.run_state && s.run_state !== 'running' ? h('span.run-state', ` (${s.run_state})`) : null,
      s.status_detail ? h('div.hint', s.status_detail) : null,
      s.quarantine_reason ? h('div.quarantine', h('strong', 'Quarantined: '), s.quarantine_reason) : null,
      c.problem ? h('div.error', c.problem) : null,
      login ? this.loginStep(login) : null);
    const err = s.last_error;
    const acts = [h('button.small', { type: 'button', dataset: { key: `ep-${c.id}` }, on: { click: () => this.endpoints(c.id) } }, 'Endpoints')];
    if (this.role === 'admin') {
      acts.push(' ', c.enabled
        ? action('Disable', async () => { await call('POST', `connectors/${seg(c.id)}/disable`); await this.load(); }, { class: 'small', dataset: { key: `dis-${c.id}` } })
        : action('Enable', async () => { await call('POST', `connectors/${seg(c.id)}/enable`); await this.load(); }, { class: 'small', dataset: { key: `en-${c.id}` } }));
      if (c.enabled && s.run_state === 'quarantined') {
        acts.push(' ', action('Lift quarantine', async () => { await call('POST', `connectors/${seg(c.id)}/enable`); await this.load(); }, { class: 'small' }));
      }
      acts.push(' ', action('Edit', () => this.editDialog(c), { class: 'small' }));
      acts.push(' ', action('Delete', async () => {
        if (!confirmDo(`Delete connector ${c.id} and its stored data?`)) return;
        await call('DELETE', `connectors/${seg(c.id)}`);
        toast(`Connector ${c.id} deleted`);
        await this.load();
      }, { class: 'small danger' }));
    }
    return h('tr', { dataset: { connector: c.id } },
      h('th', { scope: 'row' }, c.id, c.enabled ? '' : h('span.muted', ' (disabled)')),
      h('td', c.plugin, s.plugin_version ? h('span.muted', ` ${s.plugin_version}`) : ''),
      statusCell,
      h('td', st ? linkBadge(st.link) : '—', h('div.hint', `last event ${ago(s.last_event_at_ms)}`)),
      h('td.last-error', err ? [h('span', err.message), h('div.hint', fmtTime(err.at_ms))] : '—', s.restarts ? h('div.hint', `${s.restarts} restarts`) : null),
      h('td.num', rate === undefined ? '—' : rate.toFixed(1)),
      h('td.actions', acts));
  }

  loginStep(step) {
    return h('div.login-step', h('strong', 'Login step: '), step.message,
      step.url ? h('div', /^https?:\/\//i.test(step.url)
        // A link only for http(s): the URL comes from a plugin.
        ? h('a', { href: step.url, target: '_blank', rel: 'noopener noreferrer' }, 'Open the sign-in page')
        : 'Sign-in page', ': ', copyable(step.url, 'the authorization URL')) : null,
      step.user_code ? h('div', 'Code ', copyable(step.user_code, 'the device code')) : null,
      step.expires_at_ms ? h('div.hint', `expires ${fmtTime(step.expires_at_ms)}`) : null);
  }

  /** Config inputs generated from the plugin's described fields. */
  configFields(plugin, current = {}, secretsSet = []) {
    return plugin.config_fields.map((f) => {
      const name = f.name;
      const kind = f.kind || { type: 'text' };
      const cur = current[name];
      const def = f.default;
      let ctl;
      let hint = f.description;
      if (kind.type === 'boolean') {
        ctl = input({ type: 'checkbox', name, checked: cur !== undefined ? cur === true || cur === 'true' : def === 'true' });
      } else if (kind.type === 'choice') {
        const opts = f.required ? [] : [['', '(none)']];
        ctl = select(name, [...opts, ...kind.options], cur ?? def ?? '');
      } else {
        const type = f.secret ? 'password' : kind.type === 'integer' ? 'number' : kind.type === 'url' ? 'url' : 'text';
        ctl = input({ type, name, autocomplete: f.secret ? 'new-password' : 'off', spellcheck: 'false' });
        if (kind.type === 'integer') ctl.step = '1';
        if (kind.type === 'server-address') ctl.placeholder = `host[:${kind.default_port}]`;
        if (kind.type === 'url') ctl.placeholder = 'https://…';
        if (f.secret) {
          // Secrets are never shown again; an empty field keeps the stored one.
          if (secretsSet.includes(name)) {
            ctl.placeholder = 'stored — leave empty to keep';
            hint = `${hint} A value is stored; it is never shown.`;
          }
        } else if (cur !== undefined && cur !== null) {
          ctl.value = String(cur);
        } else if (def !== null && def !== undefined && !current.__edit) {
          ctl.value = def;
        }
      }
      ctl.dataset.kind = kind.type;
      ctl.dataset.config = name;
      const required = f.required && !(f.secret && secretsSet.includes(name));
      return field(f.label || name, ctl, { hint, name, required });
    });
  }

  readConfig(form, plugin) {
    const config = {};
    for (const f of plugin.config_fields) {
      const el = form.querySelector(`[data-config="${CSS.escape(f.name)}"]`);
      if (!el) continue;
      if (el.type === 'checkbox') config[f.name] = el.checked;
      else if (el.value === '') continue;
      else if (f.kind && f.kind.type === 'integer' && /^-?\d+$/.test(el.value)) config[f.name] = Number(el.value);
      else config[f.name] = el.value;
    }
    return config;
  }

  async createDialog() {
    let plugins;
    try {
      plugins = (await get('plugins')).plugins;
    } catch (e) {
      toast(e.message, 'error');
      return;
    }
    if (!plugins.length) {
      toast('No plugin is loaded: upload one under Plugins first.', 'error');
      return;
    }
    const id = input({ name: 'id', pattern: '[a-z0-9_-]{1,64}', autocomplete: 'off', spellcheck: 'false' });
    const plugin = select('plugin', plugins.map((p) => [p.id, `${p.name || p.id} ${p.version} (contract ${p.api_version})`]), plugins[0].id);
    const enabled = input({ type: 'checkbox', name: 'enabled', checked: true });
    const cfgBox = h('fieldset.config#config-fields', h('legend', 'Configuration'));
    const describe = h('p.hint');
    const render = () => {
      const p = plugins.find((x) => x.id === plugin.value);
      clear(describe, p.description || '');
      clear(cfgBox, h('legend', `Configuration of ${p.id}`), p.config_fields.length ? this.configFields(p) : h('p', 'This plugin needs no configuration.'));
    };
    plugin.addEventListener('change', render);
    const form = h('form.connector-form#connector-form', {
      novalidate: true,
      on: {
        submit: async (e) => {
          e.preventDefault();
          clearErrors(form);
          const p = plugins.find((x) => x.id === plugin.value);
          const body = { id: id.value.trim(), plugin: p.id, enabled: enabled.checked, config: this.readConfig(form, p) };
          try {
            await call('POST', 'connectors', body);
            toast(`Connector ${body.id} created`);
            d.close();
            await this.load();
          } catch (err) {
            showError(form, err);
          }
        },
      },
    },
    field('Instance id', id, { name: 'id', required: true, hint: '1-64 characters: a-z, 0-9, - and _. Part of its webhook URL.' }),
    field('Plugin', plugin, { name: 'plugin', required: true }), describe,
    cfgBox,
    field('Enabled', enabled, { name: 'enabled' }),
    h('div.buttons', h('button.primary', { type: 'submit' }, 'Create connector')));
    render();
    const d = dialog('New connector', form);
    id.focus();
  }

  async editDialog(c) {
    const p = await get(`plugins/${seg(c.plugin)}`);
    const form = h('form.connector-form', { novalidate: true });
    const watches = h('textarea', { name: 'watches', rows: 3 }, (c.watches || []).join('\n'));
    form.append(h('fieldset.config', h('legend', `Configuration of ${c.id} (${c.plugin})`),
      this.configFields(p, { ...c.config, __edit: true }, c.secrets_set || [])),
    field('Extra watched endpoints (one per line)', watches, { name: 'watches', hint: 'Besides the users\' attributes this instance watches.' }),
    h('div.buttons', h('button.primary', { type: 'submit' }, 'Save')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = { config: this.readConfig(form, p), watches: watches.value.split('\n').map((x) => x.trim()).filter(Boolean) };
      try {
        await call('PATCH', `connectors/${seg(c.id)}`, body);
        toast(`Connector ${c.id} saved`);
        d.close();
        await this.load();
      } catch (err) {
        showError(form, err);
      }
    });
    const d = dialog(`Edit ${c.id}`, form);
  }

  async endpoints(id) {
    let data;
    try {
      data = await get(`connectors/${seg(id)}/endpoints`);
    } catch (e) {
      toast(e.message, 'error');
      return;
    }
    const entries = Object.entries(data.endpoints || {});
    const states = [...new Set(entries.map(([, o]) => o.state))].sort();
    const q = input({ type: 'search', name: 'endpoint_q', placeholder: 'endpoint' });
    const st = select('endpoint_state', [['', 'Any state'], ...states], '');
    const body = h('tbody');
    const render = () => {
      const needle = q.value.trim().toLowerCase();
      clear(body, entries
        .filter(([ep, o]) => (!needle || ep.toLowerCase().includes(needle)) && (!st.value || o.state === st.value))
        .slice(0, 500)
        .map(([ep, o]) => h('tr', h('th', { scope: 'row' }, ep), h('td', o.state, o.state_detail ? ` (${o.state_detail})` : ''),
          h('td', o.telephony ? LINES[o.telephony.line] || o.telephony.line : '—'),
          h('td', o.rich ? [o.rich.availability, o.rich.activity ? `, ${activityText(o.rich.activity)}` : ''] : '—'),
          h('td', fmtTime(o.observed_at_ms)))));
    };
    q.addEventListener('input', render);
    st.addEventListener('change', render);
    render();
    dialog(`Endpoints of ${id}`,
      h('form.filters', { on: { submit: (e) => e.preventDefault() } }, field('Endpoint', q), field('State', st)),
      h('table', h('caption', `${entries.length} endpoints (at most 500 shown)`),
        h('thead', h('tr', ['Endpoint', 'State', 'Line', 'Rich', 'Observed'].map((x) => h('th', { scope: 'col' }, x)))), body),
      data.directory && data.directory.length ? h('p.hint', `Directory: ${data.directory.length} entries`) : null);
  }
}
