// A small markdown renderer for chat messages.
//
// Safety rule: every piece of source text is HTML-escaped BEFORE any formatting tag is added, and
// the formatting steps only wrap already-escaped text in fixed tags. So model or user text can never
// produce markup of its own, whatever it contains. Supported: fenced code blocks, inline code,
// headings, bold/italic/strikethrough, http(s) links, bullet and numbered lists, block quotes,
// rules and paragraphs. A fence left open (a reply still streaming) renders as code so far.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;

// Formats one escaped span of text (no code spans inside). Runs on escaped text only. Links are
// set aside first so emphasis markers inside a URL (snake_case paths) don't break the href.
function formatEscaped(s) {
  const links = [];
  s = s.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g, (m, label, url) => {
    links.push([label, url]);
    return `\u0000${links.length - 1}\u0000`;
  });
  s = emphasis(s);
  return s.replace(/\u0000(\d+)\u0000/g, (m, k) => {
    const [label, url] = links[Number(k)];
    return `<a href="${url}" target="_blank" rel="noopener noreferrer">${emphasis(label)}</a>`;
  });
}

function emphasis(s) {
  s = s.replace(/\*\*(?=\S)([^\n]*?\S)\*\*/g, "<strong>$1</strong>");
  s = s.replace(/(^|[^\w])__(?=\S)([^\n]*?\S)__(?!\w)/g, "$1<strong>$2</strong>");
  s = s.replace(/(^|[^*\w])\*(?=[^\s*])([^*\n]*?[^\s*])\*(?!\*)/g, "$1<em>$2</em>");
  s = s.replace(/(^|[^\w])_(?=[^\s_])([^_\n]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>");
  return s.replace(/~~(?=\S)([^\n]*?\S)~~/g, "<del>$1</del>");
}

// Inline markdown: code spans are split out first so nothing inside them is formatted.
export function renderInline(text) {
  const parts = String(text).replace(/\u0000/g, "").split(/(`[^`\n]+`)/);
  return parts
    .map((part, i) => (i % 2 === 1
      ? `<code>${escapeHtml(part.slice(1, -1))}</code>`
      : formatEscaped(escapeHtml(part))))
    .join("")
    .replace(/\n/g, "<br>");
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || LIST_ITEM.test(line) || QUOTE.test(line) || RULE.test(line);
}

function renderCode(lines, i, out) {
  const [, fence, lang] = FENCE.exec(lines[i]);
  const body = [];
  i += 1;
  while (i < lines.length && !lines[i].trim().startsWith(fence)) body.push(lines[i++]);
  const cls = lang ? ` class="lang-${escapeHtml(lang)}"` : "";
  const label = lang ? `<div class="code-lang">${escapeHtml(lang)}</div>` : "";
  out.push(`<pre>${label}<code${cls}>${escapeHtml(body.join("\n"))}</code></pre>`);
  return i + 1; // skip the closing fence (or run past the end while streaming)
}

function renderList(lines, i, out) {
  const first = LIST_ITEM.exec(lines[i]);
  const ordered = /\d/.test(first[2]);
  const items = [];
  while (i < lines.length) {
    const m = LIST_ITEM.exec(lines[i]);
    if (m && /\d/.test(m[2]) === ordered) {
      items.push([m[3]]);
      i += 1;
    } else if (items.length && lines[i].trim() && /^\s{2,}/.test(lines[i])) {
      items[items.length - 1].push(lines[i].trim()); // a continuation line of the item
      i += 1;
    } else {
      break;
    }
  }
  const tag = ordered ? "ol" : "ul";
  const start = ordered ? parseInt(first[2], 10) : 1;
  const attr = ordered && start !== 1 ? ` start="${start}"` : "";
  const lis = items.map((it) => `<li>${renderInline(it.join("\n"))}</li>`).join("");
  out.push(`<${tag}${attr}>${lis}</${tag}>`);
  return i;
}

export function renderMarkdown(source) {
  const lines = String(source ?? "").replace(/\r\n?/g, "\n").split("\n");
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i += 1; continue; }
    if (FENCE.test(line)) { i = renderCode(lines, i, out); continue; }
    if (RULE.test(line)) { out.push("<hr>"); i += 1; continue; }
    const h = HEADING.exec(line);
    if (h) {
      // Chat replies use small headings: h1 in a message would dwarf the page.
      const level = Math.min(6, h[1].length + 2);
      out.push(`<h${level}>${renderInline(h[2])}</h${level}>`);
      i += 1;
      continue;
    }
    if (LIST_ITEM.test(line)) { i = renderList(lines, i, out); continue; }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && QUOTE.test(lines[i])) body.push(QUOTE.exec(lines[i++])[1]);
      out.push(`<blockquote>${renderInline(body.join("\n"))}</blockquote>`);
      continue;
    }
    const para = [line];
    i += 1;
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) para.push(lines[i++]);
    out.push(`<p>${renderInline(para.join("\n"))}</p>`);
  }
  return out.join("\n");
}
