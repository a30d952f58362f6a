// The live feed: Server-Sent Events read with fetch() so the token goes in
// the Authorization header (EventSource cannot send one, and a token in a
// URL ends up in logs). After a drop it reconnects with Last-Event-ID and
// gets exactly the changes it missed, without reloading the board; a
// `resync` (the hub found us too slow) brings a fresh snapshot.
import { token, url, unauthorized } from './api.js';

export class Feed {
  /**
   * on.snapshot(users, seq), on.change(event), on.status(text, ok)
   */
  constructor(on) {
    this.on = on;
    this.lastId = null;
    this.ctrl = null;
    this.stopped = false;
    this.failures = 0;
    this.timer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ctrl) this.ctrl.abort();
  }

  /** Drop the connection now (tests and the "reconnect" button use it). */
  reconnect() {
    if (this.ctrl) this.ctrl.abort();
  }

  async connect() {
    if (this.stopped) return;
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    const headers = { Authorization: `Bearer ${token()}`, Accept: 'text/event-stream' };
    if (this.lastId !== null) headers['Last-Event-ID'] = this.lastId;
    this.on.status(this.lastId === null ? 'connecting…' : 'resuming…', false);
    try {
      const resp = await fetch(url('feed/sse'), { headers, signal: ctrl.signal, cache: 'no-store' });
      if (resp.status === 401 || resp.status === 403) {
        this.on.status('not allowed', false);
        if (resp.status === 401) unauthorized(new Error('token refused'));
        return;
      }
      if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
      this.failures = 0;
      this.on.status('live', true);
      await this.read(resp.body);
    } catch (e) {
      if (this.stopped) return;
    }
    if (this.stopped) return;
    // Backoff: 0.5 s doubling to 10 s.
    this.failures = Math.min(this.failures + 1, 6);
    const wait = Math.min(10000, 250 * 2 ** this.failures);
    this.on.status(`reconnecting in ${Math.round(wait / 1000)} s`, false);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      // Events end with a blank line (\n\n; the hub sends \n).
      let end;
      while ((end = buf.search(/\r?\n\r?\n/)) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(buf.slice(end).match(/^\r?\n\r?\n/)[0].length + end);
        this.dispatch(block);
      }
    }
  }

  dispatch(block) {
    let event = 'message';
    let id = null;
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (!line || line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const k = i < 0 ? line : line.slice(0, i);
      let v = i < 0 ? '' : line.slice(i + 1);
      if (v.startsWith(' ')) v = v.slice(1);
      if (k === 'event') event = v;
      else if (k === 'data') data.push(v);
      else if (k === 'id') id = v;
    }
    if (!data.length) return;
    let msg;
    try {
      msg = JSON.parse(data.join('\n'));
    } catch {
      return;
    }
    if (event === 'resync') {
      // Too slow: start over with a snapshot.
      this.lastId = null;
      this.ctrl.abort();
      return;
    }
    if (id !== null) this.lastId = id;
    if (event === 'snapshot') this.on.snapshot(msg.users, msg.seq);
    else this.on.change(msg);
  }
}
