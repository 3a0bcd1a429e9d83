// The JSON API client. Errors carry the server's {"error":"…"} text so the UI can show
// refusals as they are; a 401 anywhere but the login and /api/me calls means the session
// ended, and is reported once to the handler set with onUnauthorized.

export class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.retryAfter = retryAfter; // seconds, or null
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
    throw new ApiError(res.status, message, ra);
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

export const api = {
  login: (email, password) => request('POST', '/api/session', { email, password }, { quiet401: true }),
  logout: () => request('DELETE', '/api/session', undefined, { quiet401: true }),
  me: () => request('GET', '/api/me', undefined, { quiet401: true }),
  users: () => request('GET', '/api/users'),
  channels: () => request('GET', '/api/channels'),
  messages: (channelID, before, limit = 50, signal) => {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before != null) q.set('before', String(before));
    return request('GET', `/api/channels/${encodeURIComponent(channelID)}/messages?${q}`, undefined, { signal });
  },
  markRead: (channelID, number) => request('POST', `/api/channels/${encodeURIComponent(channelID)}/read`, { number }),
  post: (channelID, body) => request('POST', `/api/channels/${encodeURIComponent(channelID)}/messages`, { body }),
  take: (issueID) => request('POST', `/api/issues/${encodeURIComponent(issueID)}/take`, {}),
  resolve: (issueID) => request('POST', `/api/issues/${encodeURIComponent(issueID)}/resolve`, {}),
};
