// DOM builders for the chat UI. Text goes in through textContent only (the `text` prop), so
// nothing built here can turn a string into markup.

export function el(tag, props = {}, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids) if (kid) node.append(kid);
  return node;
}

// Line icons as SVG paths (24x24, stroked): emoji glyphs are missing from many offline systems.
const ICONS = {
  up: ["M7 10v11H3V10h4z", "M7 10l4-8c1.6 0 3 1.2 3 2.8V9h5.2a2 2 0 0 1 2 2.3l-1.5 8A2 2 0 0 1 17.7 21H7"],
  edit: ["M4 20h4L19.5 8.5a2.1 2.1 0 0 0-3-3L5 17v3z", "M14.5 7.5l3 3"],
  regen: ["M20 12a8 8 0 1 1-2.4-5.7", "M20 4v5h-5"],
  flag: ["M5 21V4", "M5 4h12l-2.5 4.5L17 13H5"],
  copy: ["M9 9h11v11H9z", "M5 15H4V4h11v1"],
  trash: ["M4 7h16", "M9 7V4h6v3", "M6 7l1 13h10l1-13"],
};
const SVG_NS = "http://www.w3.org/2000/svg";

export function icon(name, flipped = false) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", flipped ? "icon flip" : "icon");
  svg.setAttribute("aria-hidden", "true");
  for (const d of ICONS[name]) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}
