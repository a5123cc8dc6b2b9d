// The native API from the browser: the key travels in the X-API-Key header only, and lives in
// this tab's sessionStorage (gone when the tab closes), never in a URL.
const KEY = "ocr-gateway-api-key";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) { sessionStorage.setItem(KEY, value); },
  clear() { sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

async function errorOf(response) {
  try {
    const body = await response.json();
    const e = body.error || {};
    return new ApiError(response.status, e.code || "http_error", e.message || response.statusText, e.details);
  } catch {
    return new ApiError(response.status, "http_error", response.statusText || `HTTP ${response.status}`);
  }
}

// fetch with the key; a non-2xx answer (and a 202 "not ready" error) raises ApiError.
export async function call(path, { method = "GET", body, signal, key } = {}) {
  const response = await fetch(path, {
    method, body, signal, headers: { "X-API-Key": key || session.key || "" },
  });
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function json(path, options) {
  const response = await call(path, options);
  return response.status === 204 ? null : response.json();
}

// A binary answer (a preview, a result file) that must be 200: 202 means "not ready yet".
export async function blob(path, options) {
  const response = await call(path, options);
  if (response.status !== 200) throw await errorOf(response);
  return { blob: await response.blob(), name: fileName(response.headers.get("content-disposition")) };
}

function fileName(disposition) {
  const match = /filename="([^"]+)"/.exec(disposition || "");
  return match ? match[1] : "download";
}
