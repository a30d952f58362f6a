// A presence connector written in JavaScript (componentize-js).
//
// Senders push presence to the hub on `POST /hooks/{instance}/presence` with
// `Authorization: Bearer <token>`, the instance's secret `token`. The
// connector validates each push, keeps the last state of every endpoint in
// its key-value store, and reports it for the endpoints the hub watches; a
// restart re-reports what the store holds. A heartbeat timer refreshes the
// connector status. See README.md.
//
// Binding rules (componentize-js 0.23): interface imports are named imports
// of `package/interface@version`; the exported `connector` interface is an
// exported object; u64 values are BigInt; enums are kebab-case strings;
// variants are `{tag, val}`; flags are objects of booleans; an option is the
// value or `undefined`; a `result` export fails by throwing `{payload}`, and
// an import's error arrives as a thrown error whose `payload` is the value.

import { log } from 'presence:connector/log@0.2.0';
import { get, set, listKeys } from 'presence:connector/kv@0.2.0';
import { setTimer, cancel, now } from 'presence:connector/timers@0.2.0';
import {
  presence,
  endpointState,
  status,
} from 'presence:connector/report@0.2.0';

const VERSION = '0.1.0';
const MAX_UPDATES = 100;
const MAX_ENDPOINT = 256;
const MAX_NOTE = 1024;
const STATE_PREFIX = 'state/';

const AVAILABILITY = ['available', 'away', 'busy', 'do-not-disturb', 'offline', 'unknown'];
const ACTIVITY = [
  'in-a-call', 'in-a-conference', 'in-a-meeting', 'presenting',
  'out-of-office', 'be-right-back', 'off-work', 'inactive',
];
const LINE = ['idle', 'ringing', 'dialing', 'in-call', 'on-hold', 'unknown'];
const SOURCE = ['pbx-line', 'sip-derived'];

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

// What the connector instance knows.
const state = {
  token: null, // string, once configured
  heartbeatMs: 60000n,
  timer: null,
  beats: 0,
  pushes: 0,
  watched: new Set(),
};

// A push that does not validate: the message and the JSON path at fault.
class BadInput extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

// The contract's `connector-error`, thrown from a `result` export.
function fail(tag, val) {
  const e = new Error(tag);
  e.payload = val === undefined ? { tag } : { tag, val };
  return e;
}

// ---------------------------------------------------------------------------
// Validation: JSON in, a canonical object out (the form kept in kv).

const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

function obj(v, path) {
  if (!isObj(v)) throw new BadInput(path, 'must be an object');
  return v;
}

function known(v, path, allowed) {
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k)) throw new BadInput(path ? `${path}.${k}` : k, 'unknown field');
  }
}

function str(v, path, max) {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) {
    throw new BadInput(path, `must be a non-empty string of at most ${max} characters`);
  }
  return v;
}

// JSON numbers are doubles: only integers up to 2^53-1 arrive exactly.
function uint(v, path) {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new BadInput(path, 'must be an unsigned integer below 2^53');
  }
  return v;
}

function choice(v, path, list) {
  if (!list.includes(v)) throw new BadInput(path, `must be one of ${list.join(', ')}`);
  return v;
}

function validateUpdate(u, path) {
  const p = path ? `${path}.` : '';
  obj(u, path || null);
  known(u, path, ['endpoint', 'observed_at', 'sequence', 'telephony', 'rich']);
  if (!('endpoint' in u)) throw new BadInput(`${p}endpoint`, 'is required');
  const out = { endpoint: str(u.endpoint, `${p}endpoint`, MAX_ENDPOINT) };
  if (u.observed_at != null) out.observed_at = uint(u.observed_at, `${p}observed_at`);
  if (u.sequence != null) out.sequence = uint(u.sequence, `${p}sequence`);
  if (u.telephony == null && u.rich == null) {
    throw new BadInput(path || null, 'needs `telephony`, `rich` or both');
  }
  if (u.telephony != null) {
    const tp = `${p}telephony`;
    const tel = obj(u.telephony, tp);
    known(tel, tp, ['line', 'dnd', 'forward', 'source']);
    if (!('line' in tel)) throw new BadInput(`${tp}.line`, 'is required');
    const o = { line: choice(tel.line, `${tp}.line`, LINE) };
    const dnd = tel.dnd ?? false;
    if (typeof dnd !== 'boolean') throw new BadInput(`${tp}.dnd`, 'must be true or false');
    o.dnd = dnd;
    o.source = choice(tel.source ?? 'pbx-line', `${tp}.source`, SOURCE);
    if (tel.forward != null) {
      const f = obj(tel.forward, `${tp}.forward`);
      const keys = Object.keys(f);
      if (keys.length === 1 && f.voicemail === true) {
        o.forward = { voicemail: true };
      } else if (keys.length === 1 && keys[0] === 'number') {
        o.forward = { number: str(f.number, `${tp}.forward.number`, 64) };
      } else {
        throw new BadInput(`${tp}.forward`, 'must be {"voicemail": true} or {"number": "..."}');
      }
    }
    out.telephony = o;
  }
  if (u.rich != null) {
    const rp = `${p}rich`;
    const rich = obj(u.rich, rp);
    known(rich, rp, ['availability', 'activity', 'note']);
    if (!('availability' in rich)) throw new BadInput(`${rp}.availability`, 'is required');
    const o = { availability: choice(rich.availability, `${rp}.availability`, AVAILABILITY) };
    if (rich.activity != null) o.activity = str(rich.activity, `${rp}.activity`, 64);
    if (rich.note != null) {
      if (typeof rich.note !== 'string' || rich.note.length > MAX_NOTE) {
        throw new BadInput(`${rp}.note`, `must be a string of at most ${MAX_NOTE} characters`);
      }
      o.note = rich.note;
    }
    out.rich = o;
  }
  return out;
}

function validateBody(body) {
  let doc;
  try {
    doc = JSON.parse(decoder.decode(body));
  } catch (e) {
    throw new BadInput(null, `the body is not JSON: ${e.message}`);
  }
  if (isObj(doc) && 'updates' in doc) {
    known(doc, '', ['updates']);
    const ups = doc.updates;
    if (!Array.isArray(ups) || ups.length < 1 || ups.length > MAX_UPDATES) {
      throw new BadInput('updates', `must be a list of 1 to ${MAX_UPDATES} updates`);
    }
    return ups.map((u, i) => validateUpdate(u, `updates[${i}]`));
  }
  if (!isObj(doc)) throw new BadInput(null, 'the body must be a JSON object');
  return [validateUpdate(doc, '')];
}

// ---------------------------------------------------------------------------
// The canonical object to the contract's presence update.

function toUpdate(s, replay) {
  let telephony;
  if (s.telephony) {
    const x = s.telephony;
    let forward;
    if (x.forward) {
      forward = x.forward.voicemail
        ? { tag: 'voicemail' }
        : { tag: 'number', val: x.forward.number };
    }
    telephony = { line: x.line, doNotDisturb: x.dnd, forward, source: x.source };
  }
  let rich;
  if (s.rich) {
    const x = s.rich;
    let activity;
    if (x.activity !== undefined) {
      activity = ACTIVITY.includes(x.activity)
        ? { tag: x.activity }
        : { tag: 'other', val: x.activity };
    }
    rich = { availability: x.availability, activity, note: x.note };
  }
  return {
    endpoint: s.endpoint,
    observedAt: BigInt(s.observed_at ?? s.received_at),
    ordering: s.sequence !== undefined ? { epoch: 'push', sequence: BigInt(s.sequence) } : undefined,
    origin: { tag: 'platform' },
    telephony,
    rich,
    calendar: undefined,
    validForMs: undefined,
    raw: [{ name: 'delivery', value: replay ? 'kv-replay' : 'webhook' }],
  };
}

function load(endpoint) {
  const raw = get(STATE_PREFIX + endpoint);
  return raw ? JSON.parse(decoder.decode(raw)) : null;
}

function respond(statusCode, doc, extra = []) {
  return {
    status: statusCode,
    headers: [{ name: 'content-type', value: 'application/json' }, ...extra],
    body: encoder.encode(JSON.stringify(doc)),
  };
}

function error(statusCode, message, field = null, extra = []) {
  const doc = { error: message };
  if (statusCode === 400) doc.field = field;
  return respond(statusCode, doc, extra);
}

// The value of a header sent exactly once, else null.
function header(req, name) {
  const vals = req.headers.filter((h) => h.name.toLowerCase() === name).map((h) => h.value);
  return vals.length === 1 ? vals[0] : null;
}

// Compare without returning early at the first difference.
function sameSecret(a, b) {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    diff |= (a.charCodeAt(i) | 0) ^ (b.charCodeAt(i) | 0);
  }
  return diff === 0;
}

function checkToken(req) {
  const auth = header(req, 'authorization');
  if (auth === null || !auth.startsWith('Bearer ')) {
    return 'Authorization: Bearer <token> is required, once';
  }
  return sameSecret(auth.slice('Bearer '.length), state.token) ? null : 'the token does not match';
}

// ---------------------------------------------------------------------------
// The exported `connector` interface.

const both = { rich: true, telephony: true, calendar: false };

export const connector = {
  describe() {
    return {
      name: 'JavaScript example connector',
      version: VERSION,
      description: 'Presence pushed over a bearer-token webhook, kept per endpoint; written in JavaScript',
      configFields: [
        {
          name: 'token',
          label: 'Bearer token',
          description: 'The token senders put in `Authorization: Bearer`; at least 16 characters',
          kind: { tag: 'text' },
          defaultValue: undefined,
          required: true,
          secret: true,
        },
        {
          name: 'heartbeat_seconds',
          label: 'Heartbeat (s)',
          description: 'How often the connector refreshes its status, 1 to 3600',
          kind: { tag: 'integer' },
          defaultValue: '60',
          required: false,
          secret: false,
        },
      ],
      endpointKinds: [
        { attribute: 'extension', label: 'Extension number', feeds: both },
        { attribute: 'username', label: 'Username', feeds: both },
      ],
      capabilities: {
        writes: { rich: false, telephony: false, calendar: false },
        dndScopes: [],
        restore: false,
        expiry: false,
        webhooks: true,
        batchedEvents: true,
      },
    };
  },

  configure(config) {
    const values = Object.fromEntries(config.map((e) => [e.name, e.value.val]));
    const token = values.token;
    if (typeof token !== 'string' || token.length < 16) {
      state.token = null;
      throw fail('invalid-config', { field: 'token', message: 'must be at least 16 characters' });
    }
    // Integers arrive as BigInt (s64).
    const beat = values.heartbeat_seconds ?? 60n;
    if (beat < 1n || beat > 3600n) {
      throw fail('invalid-config', { field: 'heartbeat_seconds', message: 'must be 1 to 3600' });
    }
    state.token = token;
    state.heartbeatMs = beat * 1000n;
    if (state.timer !== null) cancel(state.timer);
    state.timer = setTimer(state.heartbeatMs);
    const stored = listKeys(STATE_PREFIX).length;
    status('up-and-running', `ready; ${stored} endpoint states in store`);
    log('info', `configured: heartbeat every ${beat} s, ${stored} stored states`);
  },

  handleEvents(events) {
    for (const ev of events) {
      if (ev.tag === 'timer' && ev.val === state.timer) {
        state.beats += 1;
        state.timer = setTimer(state.heartbeatMs);
        status(
          'up-and-running',
          `heartbeat ${state.beats}: ${state.watched.size} watched, ${state.pushes} pushes since start`,
        );
      } else if (ev.tag === 'shutdown') {
        log('info', `shutting down after ${state.pushes} pushes`);
      }
      // This connector opens no sockets: other events cannot come.
    }
  },

  watch(endpoints) {
    for (const ep of endpoints) {
      state.watched.add(ep);
      const stored = load(ep);
      if (stored === null) {
        endpointState(ep, 'requesting', 'no push for this endpoint yet');
      } else {
        presence(toUpdate(stored, true));
        endpointState(ep, 'active', `restored from kv (received at ${stored.received_at})`);
      }
    }
  },

  unwatch(endpoints) {
    for (const ep of endpoints) state.watched.delete(ep);
  },

  writePresence(_request) {
    throw fail('unsupported', 'the push source is read-only: this connector cannot write presence');
  },

  handleWebhook(req) {
    if (state.token === null) return error(503, 'the connector is not configured');
    if (req.path === '/presence') {
      if (req.method !== 'POST') return error(405, 'use POST', null, [{ name: 'allow', value: 'POST' }]);
    } else if (req.path.startsWith('/state/')) {
      if (req.method !== 'GET') return error(405, 'use GET', null, [{ name: 'allow', value: 'GET' }]);
    } else {
      return error(404, `no route ${req.path}; push to /presence`);
    }
    const bad = checkToken(req);
    if (bad) return error(401, bad);
    if (req.method === 'GET') {
      const stored = load(req.path.slice('/state/'.length));
      return stored ? respond(200, stored) : error(404, 'no state stored for this endpoint');
    }
    let updates;
    try {
      updates = validateBody(req.body);
    } catch (e) {
      if (e instanceof BadInput) return error(400, e.message, e.field);
      throw e;
    }
    const receivedAt = Number(now());
    let reported = 0;
    for (const s of updates) {
      s.received_at = receivedAt;
      try {
        set(STATE_PREFIX + s.endpoint, encoder.encode(JSON.stringify(s)));
      } catch (e) {
        // The store refused (its quota): say so rather than trap.
        return error(503, `cannot keep the state of ${s.endpoint}: ${JSON.stringify(e.payload ?? String(e))}`);
      }
      if (state.watched.has(s.endpoint)) {
        presence(toUpdate(s, false));
        endpointState(s.endpoint, 'active', undefined);
        reported += 1;
      }
    }
    state.pushes += updates.length;
    return respond(202, { accepted: updates.length, reported });
  },
};
