// The JSON API client. Errors carry the server's {"error":"…"} text so the UI can show
// refusals as they are; a 401 anywhere but the login and /api/me calls means the session
// ended, and is reported once to the handler set with onUnauthorized.

export class ApiError extends Error {
  constructor(status, message, retryAfter, data = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.retryAfter = retryAfter; // seconds, or null
    this.data = data; // the decoded error body (a 409 may carry new_comments)
  }
}

let unauthorized = null;

/** onUnauthorized sets the function called when a request answers 401. */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

/**
 * request sends a JSON request and returns the decoded body (null for 204).
 * opts.quiet401: do not call the unauthorized handler (login, /api/me).
 */
export async function request(method, path, body, opts = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
    signal: opts.signal,
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'Cannot reach the server. Check your connection and try again.', null);
  }
  if (res.status === 204) return null;
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    // The server's words, shown as they are but for a capital first letter.
    const message = data && typeof data.error === 'string' && data.error
      ? data.error.charAt(0).toUpperCase() + data.error.slice(1)
      : `The server answered ${res.status}${res.statusText ? ' ' + res.statusText : ''}.`;
    const ra = parseRetryAfter(res.headers.get('Retry-After'));
    if (res.status === 401 && !opts.quiet401 && unauthorized) unauthorized();
    throw new ApiError(res.status, message, ra, data);
  }
  return data;
}

function parseRetryAfter(v) {
  if (!v) return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const t = Date.parse(v);
  if (Number.isNaN(t)) return null;
  return Math.max(0, Math.ceil((t - Date.now()) / 1000));
}

const enc = encodeURIComponent;
const issuePath = (id, action = '') => `/api/issues/${enc(id)}${action ? '/' + action : ''}`;

export const api = {
  /** request is the generic call, for endpoints without a helper here. */
  request,
  login: (email, password) => request('POST', '/api/session', { email, password }, { quiet401: true }),
  logout: () => request('DELETE', '/api/session', undefined, { quiet401: true }),
  me: () => request('GET', '/api/me', undefined, { quiet401: true }),
  users: () => request('GET', '/api/users'),
  teams: () => request('GET', '/api/teams'),
  presence: () => request('GET', '/api/presence'),
  channels: () => request('GET', '/api/channels'),
  messages: (channelID, before, limit = 50, signal) => {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before != null) q.set('before', String(before));
    return request('GET', `/api/channels/${enc(channelID)}/messages?${q}`, undefined, { signal });
  },
  markRead: (channelID, number) => request('POST', `/api/channels/${enc(channelID)}/read`, { number }),
  post: (channelID, body) => request('POST', `/api/channels/${enc(channelID)}/messages`, { body }),
  direct: (userID) => request('POST', '/api/direct', { user_id: userID }),
  createChannel: (name, memberIDs) => request('POST', '/api/channels', { name, member_ids: memberIDs }),
  members: (channelID) => request('GET', `/api/channels/${enc(channelID)}/members`),
  addMember: (channelID, userID) => request('PUT', `/api/channels/${enc(channelID)}/members/${enc(userID)}`),
  removeMember: (channelID, userID) => request('DELETE', `/api/channels/${enc(channelID)}/members/${enc(userID)}`),
  /** issues lists issues; filters is an object of the documented query parameters. */
  issues: (filters = {}, signal) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v !== '' && v != null) q.set(k, String(v));
    return request('GET', `/api/issues?${q}`, undefined, { signal });
  },
  issue: (id, signal) => request('GET', issuePath(id), undefined, { signal }),
  issueSLA: (id, signal) => request('GET', issuePath(id, 'sla'), undefined, { signal }),
  take: (id) => request('POST', issuePath(id, 'take'), {}),
  assign: (id, assigneeID) => request('POST', issuePath(id, 'assign'), { assignee_id: assigneeID }),
  resolve: (id, lastSeen) => request('POST', issuePath(id, 'resolve'), lastSeen ? { last_seen_comment_id: lastSeen } : {}),
  close: (id, lastSeen) => request('POST', issuePath(id, 'close'), lastSeen ? { last_seen_comment_id: lastSeen } : {}),
  reopen: (id, lastSeen) => request('POST', issuePath(id, 'reopen'), lastSeen ? { last_seen_comment_id: lastSeen } : {}),
  patchIssue: (id, fields) => request('PATCH', issuePath(id), fields),
  note: (id, body) => request('POST', issuePath(id, 'notes'), { body }),
  reply: (id, body, lastSeen) => request('POST', issuePath(id, 'replies'), lastSeen ? { body, last_seen_comment_id: lastSeen } : { body }),
  viewing: (id, typing) => request('POST', issuePath(id, 'viewing'), { typing: !!typing }),
  customer: (id, signal) => request('GET', `/api/customers/${enc(id)}`, undefined, { signal }),
  follow: (id, on) => request(on ? 'POST' : 'DELETE', `/api/customers/${enc(id)}/follow`),
};
