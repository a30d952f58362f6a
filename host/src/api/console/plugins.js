// Plugins: versions and contract version, upload (manifest + component),
// reload, delete; folders that failed to load.
import { call, get, seg } from './api.js';
import { h, clear, field, input, table, toast, fmtTime, action, showError, confirmDo, clearErrors } from './dom.js';

export class Plugins {
  constructor(role) {
    this.role = role;
    this.list = h('div#plugin-list');
    this.root = h('section', { 'aria-labelledby': 'plugins-title' },
      h('div.section-head', h('h2#plugins-title', 'Plugins'), action('Refresh', () => this.load())),
      role === 'admin' ? this.uploadForm() : null,
      this.list);
    this.load();
  }

  destroy() {}

  uploadForm() {
    const manifest = input({ type: 'file', name: 'manifest', accept: '.toml,text/plain' });
    const component = input({ type: 'file', name: 'component', accept: '.wasm,application/wasm' });
    const form = h('form.card.upload#plugin-upload', {
      novalidate: true,
      on: {
        submit: async (e) => {
          e.preventDefault();
          clearErrors(form);
          const fd = new FormData();
          if (manifest.files[0]) fd.append('manifest', manifest.files[0]);
          if (component.files[0]) fd.append('component', component.files[0]);
          try {
            const p = await call('POST', 'plugins', fd);
            toast(`Plugin ${p.id} ${p.version} loaded`);
            form.reset();
            await this.load();
          } catch (err) {
            showError(form, err);
          }
        },
      },
    },
    h('h3', 'Upload a plugin'),
    h('p.hint', 'The manifest (plugin.toml, with the component\'s sha256) and the component (.wasm). Uploading an id that exists hot-reloads its instances.'),
    field('Manifest (plugin.toml)', manifest, { name: 'manifest', required: true }),
    field('Component (.wasm)', component, { name: 'component', required: true }),
    h('button.primary', { type: 'submit' }, 'Upload'));
    return form;
  }

  async load() {
    let r;
    try {
      r = await get('plugins');
    } catch (e) {
      clear(this.list, h('p.error', e.message));
      return;
    }
    const rows = r.plugins.map((p) => h('tr', { dataset: { plugin: p.id } },
      h('th', { scope: 'row' }, p.id, p.name && p.name !== p.id ? h('span.muted', ` (${p.name})`) : null),
      h('td', p.version), h('td', p.api_version),
      h('td', p.description || '', h('div.hint', `fields: ${p.config_fields.map((f) => f.name).join(', ') || 'none'}; watches: ${(p.endpoint_kinds || []).map((k) => k.attribute).join(', ')}; writes: ${(p.capabilities && p.capabilities.writes || []).join(', ') || 'none'}`)),
      h('td', (p.instances || []).join(', ') || '—'),
      h('td', p.origin ? p.origin.kind : '—', h('div.hint', fmtTime(p.loaded_at_ms))),
      h('td.actions', this.role === 'admin' ? [
        action('Reload', async () => {
          const v = await call('POST', `plugins/${seg(p.id)}/reload`);
          toast(`Plugin ${p.id} reloaded (${v.version})`);
          await this.load();
        }, { class: 'small' }), ' ',
        action('Delete', async () => {
          if (!confirmDo(`Delete plugin ${p.id}?`)) return;
          await call('DELETE', `plugins/${seg(p.id)}`);
          toast(`Plugin ${p.id} deleted`);
          await this.load();
        }, { class: 'small danger' }),
      ] : '')));
    clear(this.list,
      table('Loaded plugins', ['Plugin', 'Version', 'Contract', 'Description', 'Instances', 'Origin', 'Actions'], rows, { class: 'plugins' }),
      r.folder_errors && r.folder_errors.length
        ? h('div.card', h('h3', 'Folders that failed to load'), h('ul', r.folder_errors.map((e) => h('li', typeof e === 'string' ? e : JSON.stringify(e)))))
        : null);
  }
}
