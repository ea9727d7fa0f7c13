// HTTP helpers for the chat UI: JSON calls and the SSE reader for streamed replies.
//
// Every call sends a JSON content type and the X-Requested-With header: the server refuses
// cookie-authenticated writes without them, which a cross-site form cannot forge (CSRF).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const HEADERS = { "Content-Type": "application/json", "X-Requested-With": "chatrlhf" };

async function errorOf(resp) {
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    const detail = body.detail ?? body.error?.message ?? body.message;
    if (typeof detail === "string") message = detail;
    else if (Array.isArray(detail) && detail[0]?.msg) message = detail.map((d) => d.msg).join("; ");
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(resp.status, message);
}

export async function api(method, path, body) {
  const resp = await fetch(path, {
    method,
    headers: HEADERS,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!resp.ok) throw await errorOf(resp);
  if (resp.status === 204) return null;
  return resp.json();
}

// POSTs `body` to `path` and calls onEvent(obj) for each `data: {json}` SSE event until the
// stream ends or `signal` aborts it.
export async function stream(path, body, onEvent, signal) {
  const resp = await fetch(path, {
    method: "POST",
    headers: { ...HEADERS, Accept: "text/event-stream" },
    credentials: "same-origin",
    body: JSON.stringify(body ?? {}),
    signal,
  });
  if (!resp.ok) throw await errorOf(resp);
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (data && data !== "[DONE]") onEvent(JSON.parse(data));
    }
  }
}
