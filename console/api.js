// The console's one client of the broker's public APIs: the admin API on this page's
// origin, the message API at the port the status names (it answers this origin's
// CORS requests). Every failure is an ApiError carrying the API's own code and message.

const TOKEN_KEY = 'rustmq-etl.admin-token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let token = sessionStorage.getItem(TOKEN_KEY);
let messagesBase = null;

export function setToken(value) {
  token = value || null;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function hasToken() {
  return token !== null;
}

// The message API is on the host this page came from, at the port the broker says.
export function setMessagesAddr(addr) {
  const port = String(addr || '').split(':').pop();
  messagesBase = port ? `${location.protocol}//${location.hostname}:${port}` : null;
}

export function messagesUrl(path) {
  return `${messagesBase}${path}`;
}

async function call(base, method, path, { json, body, headers = {}, signal } = {}) {
  const init = { method, headers: { ...headers }, signal };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(base + path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'unreachable', `the broker did not answer ${method} ${path}: ${e.message}`);
  }
  const text = await response.text();
  let value = null;
  if (text) {
    try {
      value = JSON.parse(text);
    } catch {
      value = text;
    }
  }
  if (!response.ok) {
    const error = value && value.error;
    throw new ApiError(
      response.status,
      (error && error.code) || `http_${response.status}`,
      (error && error.message) || `${method} ${path} answered ${response.status}`,
    );
  }
  return value;
}

export const admin = {
  get: (path, opts) => call('', 'GET', path, opts),
  post: (path, opts) => call('', 'POST', path, opts),
  patch: (path, opts) => call('', 'PATCH', path, opts),
  delete: (path, opts) => call('', 'DELETE', path, opts),
};

export const messages = {
  get: (path, opts) => call(messagesBase, 'GET', path, opts),
  post: (path, opts) => call(messagesBase, 'POST', path, opts),
};

export const enc = encodeURIComponent;
