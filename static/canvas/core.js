// Shared state, the server round-trip, and the canvas geometry (mirrors
// app/web/builder_geometry.py, so a drag redraws exactly what the server
// would). No inline scripts anywhere (CSP): data arrives in data-* attributes.

export const W = 240, H = 76, GRID = 8, MIN_K = 0.2, MAX_K = 3;
export const TW = 210, TH = 48, T_GAP = 16, T_RISE = 84;

const root = document.getElementById("builder");
export const dom = root && {
  root: root,
  svg: document.getElementById("canvas"),
  viewport: document.getElementById("viewport"),
  graph: document.getElementById("graph"),
  wire: document.getElementById("wire"),
  marquee: document.getElementById("marquee"),
  wrap: document.querySelector(".canvas-wrap"),
  minimap: document.getElementById("minimap"),
  sidePanel: document.getElementById("side-panel"),
  emptyPanel: document.getElementById("empty-panel-template"),
  status: document.getElementById("builder-status"),
  statusText: document.getElementById("builder-status-text"),
  statusUndo: document.getElementById("builder-status-undo"),
  palette: document.querySelector(".palette"),
};

export const state = {
  base: root ? root.dataset.base : "",
  workflow: root ? root.dataset.workflow : "",
  view: { x: 40, y: 40, k: 1 },
  // Several steps, or one connection, or one trigger, at a time.
  selection: { nodes: new Set(), edge: null, trigger: null },
  insertEdge: null, // a connection whose "+" was pressed: the next step goes there
  pendingSelect: null, // step ids to select once the canvas is redrawn
  pendingReveal: false,
  readOnly: false,
  history: { undo: null, redo: null },
  liveCounts: null, overlayData: null, testPath: [], forecast: null,
};

const csrfMeta = document.querySelector('meta[name="csrf-token"]');
const csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

export function readJSON(text) {
  try { return text ? JSON.parse(text) : null; } catch (e) { return null; }
}

// A short message at the foot of the canvas; ``undoable`` adds an Undo button.
export function say(message, options) {
  options = options || {};
  dom.statusText.textContent = message || "";
  dom.status.classList.toggle("shown", !!message);
  dom.status.classList.toggle("error", !!options.error);
  dom.statusUndo.hidden = !options.undoable;
  window.clearTimeout(say.timer);
  if (message && !options.error) {
    say.timer = window.setTimeout(function () { dom.status.classList.remove("shown"); }, options.undoable ? 8000 : 4000);
  }
}

// Every write carries the CSRF token; HX-Request marks it as a fragment call.
export function send(method, url, body) {
  return fetch(url, {
    method: method,
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      "Accept": "application/json",
      "X-CSRFToken": csrf,
      "HX-Request": "true"
    },
    body: body ? JSON.stringify(body) : undefined
  }).then(function (response) {
    if (response.redirected) throw new Error("You were signed out: reload the page to sign in again.");
    return response.json().catch(function () { return {}; }).then(function (data) {
      if (!response.ok) {
        var message = (data && data.error && data.error.message) || ("Request failed (" + response.status + ")");
        throw new Error(message);
      }
      if (data && data.history) setHistory(data.history);
      return data;
    });
  });
}

export function url(path) { return state.base + path; }

export function graphChanged() {
  document.body.dispatchEvent(new CustomEvent("graph-changed", { bubbles: true }));
}

export function setHistory(history) {
  state.history = history || { undo: null, redo: null };
  var undo = document.querySelector('[data-action="undo"]');
  var redo = document.querySelector('[data-action="redo"]');
  if (undo) {
    undo.disabled = state.readOnly || !state.history.undo;
    undo.title = state.history.undo ? "Undo: " + state.history.undo + " (Ctrl+Z)" : "Nothing to undo";
  }
  if (redo) {
    redo.disabled = state.readOnly || !state.history.redo;
    redo.title = state.history.redo ? "Redo: " + state.history.redo + " (Ctrl+Shift+Z)" : "Nothing to redo";
  }
}

// -- geometry -------------------------------------------------------------------

export function nodeEl(id) {
  return dom.graph.querySelector('.node[data-node-id="' + CSS.escape(id) + '"]');
}

export function allNodes() { return Array.prototype.slice.call(dom.graph.querySelectorAll(".node")); }

export function pos(el) {
  return { x: parseFloat(el.dataset.x) || 0, y: parseFloat(el.dataset.y) || 0 };
}

export function nodeName(el) {
  var label = el.querySelector(".node-label");
  return label ? label.textContent : el.dataset.nodeId;
}

export function snap(value) { return Math.round(value / GRID) * GRID; }

export function edgePath(sx, sy, tx, ty) {
  var bend = Math.max(40, Math.abs(ty - sy) / 2);
  return "M" + sx + "," + sy + " C" + sx + "," + (sy + bend) + " " + tx + "," + (ty - bend) + " " + tx + "," + ty;
}

export function portPoint(nodeElement, key) {
  var p = pos(nodeElement);
  var port = nodeElement.querySelector('.port-out[data-port="' + CSS.escape(key) + '"]');
  var px = port ? parseFloat(port.dataset.px) : W / 2;
  var py = port ? parseFloat(port.dataset.py) : H;
  return { x: p.x + px, y: p.y + py };
}

export function layoutEdge(edge) {
  var s = nodeEl(edge.dataset.source), t = nodeEl(edge.dataset.target);
  if (!s || !t) return;
  var a = portPoint(s, edge.dataset.port), b = pos(t);
  var tx = b.x + W / 2, ty = b.y;
  var d = edgePath(a.x, a.y, tx, ty);
  edge.querySelectorAll("path").forEach(function (path) { path.setAttribute("d", d); });
  var mx = (a.x + tx) / 2, my = (a.y + ty) / 2;
  var count = edge.querySelector(".edge-count");
  if (count) { count.setAttribute("x", mx); count.setAttribute("y", my - 16); }
  var plus = dom.graph.querySelector('.edge-add[data-edge-id="' + CSS.escape(edge.dataset.edgeId) + '"]');
  if (plus) plus.setAttribute("transform", "translate(" + mx + "," + my + ")");
}

// Triggers stand side by side above the entry step and follow it.
export function layoutTriggers() {
  var layer = document.getElementById("triggers");
  if (!layer) return;
  var entry = layer.dataset.entry && nodeEl(layer.dataset.entry);
  if (!entry) return;
  var cards = layer.querySelectorAll(".trigger");
  var lines = dom.graph.querySelectorAll(".trigger-edge");
  var p = pos(entry);
  var total = cards.length * TW + (cards.length - 1) * T_GAP;
  var left = p.x + W / 2 - total / 2, top = p.y - T_RISE - TH;
  cards.forEach(function (card, i) {
    var x = left + i * (TW + T_GAP);
    card.setAttribute("transform", "translate(" + x + "," + top + ")");
    if (lines[i]) lines[i].setAttribute("d", edgePath(x + TW / 2, top + TH, p.x + W / 2, p.y));
  });
}

export function moveNode(el, x, y) {
  el.dataset.x = x;
  el.dataset.y = y;
  el.setAttribute("transform", "translate(" + x + "," + y + ")");
  var id = el.dataset.nodeId;
  dom.graph.querySelectorAll(".edge").forEach(function (edge) {
    if (edge.dataset.source === id || edge.dataset.target === id) layoutEdge(edge);
  });
  if (el.dataset.entry) layoutTriggers();
}

export function typing(el) {
  return !!el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
}
