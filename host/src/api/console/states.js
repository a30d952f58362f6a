// The seeds' vocabulary: each merged state with its label, icon and colour
// class. The icon and the words carry the state; colour only adds to them.
import { h } from './dom.js';

export const STATES = {
  available: ['Available', '●'],
  away: ['Away', '◔'],
  busy: ['Busy', '■'],
  'do-not-disturb': ['Do not disturb', '⊖'],
  offline: ['Offline', '○'],
  'forwarded-to-voicemail': ['Forwarded to voicemail', '✉'],
  'forwarded-to-number': ['Forwarded to number', '↪'],
  unknown: ['Unknown', '?'],
  'access-denied': ['Access denied', '⊘'],
  error: ['Error', '⚠'],
  'not-found': ['Not found', '∅'],
  'not-requested': ['Not requested', '–'],
  requesting: ['Requesting', '…'],
  'server-not-configured': ['Server not configured', '⚙'],
  'not-configured': ['Not configured', '⚙'],
};

export const LINES = {
  idle: 'idle',
  ringing: 'ringing',
  dialing: 'dialling',
  'in-call': 'in a call',
  'on-hold': 'on hold',
  unknown: 'line unknown',
};

export const CONNECTOR_STATUS = {
  'not-configured': 'Not configured',
  disabled: 'Disabled',
  forbidden: 'Forbidden',
  'connection-error': 'Connection error',
  'up-and-running': 'Up and running',
  'credentials-not-found': 'Credentials not found',
  'login-required': 'Login required',
  throttled: 'Throttled',
};

export const LINK = { online: ['Online', '●'], connected: ['Connected', '◐'], offline: ['Offline', '○'] };

export function label(state) {
  return (STATES[state] || [state || '—'])[0];
}

/** A state badge: icon (hidden from screen readers) + words, coloured. */
export function badge(state, extra) {
  const [text, icon] = STATES[state] || [state || '—', '?'];
  return h(`span.badge.s-${state || 'none'}`, h('span.icon', { 'aria-hidden': 'true' }, icon), ' ', text,
    extra ? h('span.extra', ` · ${extra}`) : null);
}

export function linkBadge(link) {
  const [text, icon] = LINK[link] || [link, '?'];
  return h(`span.badge.l-${link}`, h('span.icon', { 'aria-hidden': 'true' }, icon), ' ', text);
}

export function activityText(a) {
  if (!a) return null;
  if (typeof a === 'string') return a.replace(/-/g, ' ');
  if (a.other) return a.other;
  return JSON.stringify(a);
}

/** In a conversation right now: a line in a call / on hold, or a call activity. */
export function inCall(u) {
  const line = u.telephony && u.telephony.line;
  const act = u.rich && u.rich.activity;
  return line === 'in-call' || line === 'on-hold' || line === 'dialing'
    || act === 'in-a-call' || act === 'in-a-conference';
}

export function forwardText(f) {
  if (!f) return null;
  if (f === 'voicemail') return 'to voicemail';
  if (f.number) return `to ${f.number}`;
  return typeof f === 'string' ? `to ${f}` : JSON.stringify(f);
}

/**
 * How long a state has lasted, from its `since_ms`: "for 4 min",
 * "for 2 h 5 min", "since Mon 7 Dec 09:00" after a day; "just now" under a
 * minute. Null without a start time.
 */
export function forText(sinceMs, now = Date.now()) {
  if (!sinceMs) return null;
  const min = Math.floor(Math.max(0, now - sinceMs) / 60000);
  if (min < 1) return 'just now';
  if (min < 60) return `for ${min} min`;
  if (min < 24 * 60) return `for ${Math.floor(min / 60)} h${min % 60 ? ` ${min % 60} min` : ''}`;
  return `since ${clock(sinceMs)}`;
}

const SHOW_AS = {
  busy: 'In a meeting',
  tentative: 'Tentatively taken',
  'out-of-office': 'Out of office',
  'working-elsewhere': 'Working elsewhere',
};

/** A time of day in the viewer's zone; with the day when it is not today. */
function clock(ms) {
  const d = new Date(ms);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toDateString() === new Date().toDateString()
    ? time
    : `${d.toLocaleDateString([], { weekday: 'short', day: 'numeric', month: 'short' })} ${time}`;
}

/**
 * The person's day in one line, from the merged presence's `calendar`:
 * "In a meeting until 14:30 (Sales review), free from 15:00",
 * "Out of office until Mon 7 Dec 09:00: Back on Monday", "Next: 16:00–17:00".
 * Null when there is nothing to say.
 */
export function calendarText(c) {
  if (!c) return null;
  const parts = [];
  if (c.out_of_office) {
    const o = c.out_of_office;
    parts.push(`Out of office${o.until_ms ? ` until ${clock(o.until_ms)}` : ''}${o.message ? `: ${o.message}` : ''}`);
  }
  if (c.now) {
    const what = SHOW_AS[c.now.show_as] || 'Taken';
    const subject = c.now.subject ? ` (${c.now.subject})` : '';
    let line = `${what} until ${clock(c.now.end_ms)}${subject}`;
    if (c.free_from_ms && c.free_from_ms !== c.now.end_ms) line += `, free from ${clock(c.free_from_ms)}`;
    parts.push(line);
  } else if (c.next) {
    const subject = c.next.subject ? ` (${c.next.subject})` : '';
    parts.push(`Next: ${clock(c.next.start_ms)}–${clock(c.next.end_ms)}${subject}`);
  }
  return parts.length ? parts.join(' · ') : null;
}
