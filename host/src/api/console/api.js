// The REST API, relative to this page (…/ui/ → …/api/v1/), so the console
// works under a reverse proxy's path prefix. The token lives in
// sessionStorage only and is sent in the Authorization header, never in a URL.

const KEY = 'presence-hub-token';
export const API = new URL('../api/v1/', document.baseURI);

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(t) {
  sessionStorage.setItem(KEY, t);
}

export function clearToken() {
  sessionStorage.removeItem(KEY);
}

/** An error answer of the API: status, message and the field it names. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.field = body && body.field;
    this.body = body;
  }
}

let onUnauthorized = () => {};
export function whenUnauthorized(f) {
  onUnauthorized = f;
}

/** The hub no longer takes the token (revoked, or a new admin token). */
export function unauthorized(err) {
  onUnauthorized(err);
}

/** The URL of an API path such as `users?q=x` (no leading slash). */
export function url(path) {
  return new URL(path, API);
}

/**
 * Call the API. `body`: an object (sent as JSON), a string with
 * `contentType`, or FormData. Returns the parsed JSON (null for 204).
 */
export async function call(method, path, body, contentType) {
  const headers = { Authorization: `Bearer ${token()}` };
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (typeof body === 'string') {
    payload = body;
    headers['Content-Type'] = contentType || 'text/plain';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  let resp;
  try {
    resp = await fetch(url(path), { method, headers, body: payload, cache: 'no-store', referrerPolicy: 'no-referrer' });
  } catch (e) {
    throw new ApiError(0, { error: `the hub cannot be reached (${e.message})` });
  }
  const text = await resp.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = { error: text };
    }
  }
  if (!resp.ok) {
    const err = new ApiError(resp.status, json);
    if (resp.status === 401) onUnauthorized(err);
    throw err;
  }
  return json;
}

export const get = (p) => call('GET', p);

/** Whether a call is allowed (not 403), for finding the token's role. */
async function allowed(path) {
  try {
    await get(path);
    return true;
  } catch (e) {
    if (e.status === 403) return false;
    throw e;
  }
}

/**
 * The token's role, found by what it may read: `console` reads presence,
 * `operator` also users, `admin` also tokens. Throws ApiError (401) for a
 * bad token.
 */
export async function discoverRole() {
  await get('presence?per_page=1');
  if (await allowed('tokens')) return 'admin';
  if (await allowed('users?per_page=1')) return 'operator';
  return 'console';
}

/** All pages of a paged list (`users`), bounded to 1,000 pages. */
export async function all(path, key) {
  const out = [];
  const sep = path.includes('?') ? '&' : '?';
  for (let page = 1; page <= 1000; page++) {
    const r = await get(`${path}${sep}per_page=1000&page=${page}`);
    out.push(...r[key]);
    if (out.length >= r.total || r[key].length === 0) break;
  }
  return out;
}

/** Path segment encoding for ids and usernames. */
export const seg = encodeURIComponent;
