// What is selected: several steps, or one connection, or one trigger. The
// toolbar's buttons follow the selection; the address bar names the step
// a reload should open (?node=), without adding history entries.
import { dom, state, nodeEl } from "./core.js";
import { drawMinimap } from "./view.js";

var sel = state.selection;

export function selectedNodes() { return Array.from(sel.nodes); }

export function markSelection() {
  dom.graph.querySelectorAll(".selected").forEach(function (el) { el.classList.remove("selected"); });
  sel.nodes.forEach(function (id) {
    var el = nodeEl(id);
    if (el) el.classList.add("selected"); else sel.nodes.delete(id);
  });
  if (sel.edge) {
    var edge = dom.graph.querySelector('.edge[data-edge-id="' + CSS.escape(sel.edge) + '"]');
    if (edge) edge.classList.add("selected"); else sel.edge = null;
  }
  if (sel.trigger !== null) {
    var trigger = dom.graph.querySelector('.trigger[data-trigger-id="' + CSS.escape(sel.trigger) + '"]');
    if (trigger) trigger.classList.add("selected");
  }
  updateTools();
  drawMinimap();
}

export function updateTools() {
  var count = sel.nodes.size, ro = state.readOnly;
  function able(action, on) {
    var button = document.querySelector('[data-action="' + action + '"]');
    if (button) button.disabled = ro || !on;
  }
  able("connect", count === 1);
  able("duplicate", count > 0);
  able("delete", count > 0 || !!sel.edge);
  able("paste", !!readClipboard());
  able("tidy", !!dom.graph.querySelector(".node"));
}

export function setUrlNode(id) {
  if (id) {
    window.history.replaceState(null, "", state.base + "?node=" + encodeURIComponent(id));
    return;
  }
  var address = new URL(window.location.href);
  if (!address.searchParams.has("node")) return;
  address.searchParams.delete("node");
  window.history.replaceState(null, "", address.pathname + address.search);
}

export function selectNodes(ids, options) {
  options = options || {};
  sel.nodes = new Set(ids);
  sel.edge = null;
  sel.trigger = null;
  markSelection();
  setUrlNode(ids.length === 1 ? ids[0] : null);
  if (options.focus && ids.length === 1) {
    var el = nodeEl(ids[0]);
    if (el) el.focus({ preventScroll: true });
  }
}

export function toggleNode(id) {
  if (sel.nodes.has(id)) sel.nodes.delete(id); else sel.nodes.add(id);
  sel.edge = null;
  sel.trigger = null;
  markSelection();
  setUrlNode(sel.nodes.size === 1 ? selectedNodes()[0] : null);
}

export function selectEdge(id) {
  sel.nodes = new Set();
  sel.trigger = null;
  sel.edge = id ? String(id) : null;
  markSelection();
  setUrlNode(null);
}

export function selectTrigger(id) {
  sel.nodes = new Set();
  sel.edge = null;
  sel.trigger = id;
  markSelection();
  setUrlNode(null);
}

export function clearSelection() {
  sel.nodes = new Set();
  sel.edge = null;
  sel.trigger = null;
  markSelection();
  setUrlNode(null);
}

// Copied steps live in localStorage: the same firm's other workflows (other
// tabs too) can paste them. The server checks everything again on paste.
var CLIPBOARD_KEY = "automation.builder.clipboard";

export function readClipboard() {
  try {
    var data = JSON.parse(window.localStorage.getItem(CLIPBOARD_KEY) || "null");
    return data && data.document && data.document.format === "automation-steps" ? data : null;
  } catch (e) { return null; }
}

export function writeClipboard(doc) {
  try {
    window.localStorage.setItem(CLIPBOARD_KEY, JSON.stringify({ document: doc, workflow: state.workflow, pasted: 0 }));
  } catch (e) { /* private mode: copy within this page only */ }
  updateTools();
}

export function notePaste(data) {
  data.pasted = (data.pasted || 0) + 1;
  try { window.localStorage.setItem(CLIPBOARD_KEY, JSON.stringify(data)); } catch (e) { /* ignore */ }
}
