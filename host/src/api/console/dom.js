// Small DOM helpers: element building (text only, never innerHTML with
// data), forms with errors next to their fields, dialogs, copy buttons.

/** h('tag.class#id', {attrs, on: {click}}, ...children) */
export function h(spec, attrs, ...children) {
  const [, tag = 'div', rest = ''] = spec.match(/^([a-z0-9-]*)(.*)$/i);
  const el = document.createElement(tag || 'div');
  for (const m of rest.matchAll(/([.#])([\w-]+)/g)) {
    if (m[1] === '.') el.classList.add(m[2]);
    else el.id = m[2];
  }
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') {
      for (const [ev, f] of Object.entries(v)) el.addEventListener(ev, f);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k in el && typeof v !== 'string') {
      el[k] = v;
    } else if (k === 'value' || k === 'checked') {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
export const nextId = (p = 'f') => `${p}-${++uid}`;

/**
 * A labelled field: input (or given control) with hint and error slot.
 * `name` is the API's field name, used to show its errors here.
 */
export function field(label, control, { hint, name, required } = {}) {
  const id = control.id || (control.id = nextId('in'));
  const err = h('p.error', { id: `${id}-error`, role: 'alert', dataset: { errorFor: name || control.name || id } });
  const described = [err.id];
  let hintEl = null;
  if (hint) {
    hintEl = h('p.hint', { id: `${id}-hint` }, hint);
    described.push(hintEl.id);
  }
  control.setAttribute('aria-describedby', described.join(' '));
  if (required) control.required = true;
  if (name && !control.name) control.name = name;
  const isCheck = control.type === 'checkbox';
  const lab = h('label', { for: id }, label, required ? h('span.req', { 'aria-hidden': 'true' }, ' *') : null);
  return h(`div.field${isCheck ? '.check' : ''}`, isCheck ? [control, lab] : [lab, control], hintEl, err);
}

export const input = (attrs) => h('input', { type: 'text', ...attrs });

export function select(name, options, value, attrs = {}) {
  return h('select', { name, ...attrs },
    options.map((o) => {
      const [v, label] = Array.isArray(o) ? o : [o, o];
      return h('option', { value: v, selected: v === value }, label);
    }));
}

/** Clear the errors shown in a form. */
export function clearErrors(root) {
  for (const e of root.querySelectorAll('.error[data-error-for]')) e.textContent = '';
  for (const e of root.querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
  const top = root.querySelector('.form-error');
  if (top) top.textContent = '';
}

/**
 * Show an API error next to the field it names (`config.shared_secret`,
 * `sync.lease_seconds`, `username`...), else at the top of the form.
 * Returns the element the error went to.
 */
export function showError(root, err) {
  clearErrors(root);
  const f = err.field || '';
  const candidates = [f, f.replace(/^config\./, ''), f.split('.').pop(), f.replace(/\[\d+\]$/, '')];
  for (const c of candidates) {
    if (!c) continue;
    const slot = [...root.querySelectorAll('.error[data-error-for]')].find((e) => e.dataset.errorFor === c);
    if (slot) {
      slot.textContent = err.message;
      const ctl = root.querySelector(`#${CSS.escape(slot.id.replace(/-error$/, ''))}`);
      if (ctl) {
        ctl.setAttribute('aria-invalid', 'true');
        ctl.focus();
      }
      return slot;
    }
  }
  let top = root.querySelector('.form-error');
  if (!top) {
    top = h('p.error.form-error', { role: 'alert' });
    root.prepend(top);
  }
  top.textContent = f ? `${f}: ${err.message}` : err.message;
  return top;
}

export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  const t = h(`div.toast.${kind}`, text);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

/** A modal dialog (native <dialog>: focus trap and Escape for free). */
export function dialog(title, ...content) {
  const titleId = nextId('dlg');
  const close = h('button.close', { type: 'button', 'aria-label': 'Close', on: { click: () => d.close() } }, '×');
  const d = h('dialog.card', { 'aria-labelledby': titleId },
    h('div.dialog-head', h('h2', { id: titleId }, title), close), ...content);
  d.addEventListener('close', () => d.remove());
  document.body.append(d);
  d.showModal();
  return d;
}

/** A value with a button that copies it to the clipboard. */
export function copyable(value, label) {
  const code = h('code.copy-value', value);
  const btn = h('button.small', {
    type: 'button',
    'aria-label': `Copy ${label}`,
    on: {
      click: async () => {
        try {
          await navigator.clipboard.writeText(value);
          btn.textContent = 'Copied';
        } catch {
          // Without clipboard access: select the text for Ctrl+C.
          const r = document.createRange();
          r.selectNodeContents(code);
          const s = getSelection();
          s.removeAllRanges();
          s.addRange(r);
          btn.textContent = 'Press Ctrl+C';
        }
        setTimeout(() => { btn.textContent = 'Copy'; }, 2000);
      },
    },
  }, 'Copy');
  return h('span.copyable', code, ' ', btn);
}

export function confirmDo(question) {
  return window.confirm(question);
}

export function fmtTime(ms) {
  if (!ms) return '—';
  return new Date(ms).toLocaleString();
}

export function ago(ms) {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

/** A table with a caption and header row; rows: arrays of cells. */
export function table(caption, headers, rows, attrs = {}) {
  return h('table', attrs,
    h('caption', caption),
    h('thead', h('tr', headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', rows));
}

/** Run an async action from a button: disabled while it runs, errors shown. */
export function action(label, f, attrs = {}) {
  const b = h('button', {
    type: 'button',
    ...attrs,
    on: {
      click: async () => {
        b.disabled = true;
        try {
          await f();
        } catch (e) {
          toast(e.message, 'error');
        } finally {
          b.disabled = false;
        }
      },
    },
  }, label);
  return b;
}
