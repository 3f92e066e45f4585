// The builder canvas, as plain ES modules (no framework, no bundler):
// core (state, requests, geometry), view (pan, zoom, minimap), selection,
// panels (inspector and unsaved changes), edits (add, insert, delete,
// undo, copy/paste, tidy, connect) and input (pointer, keyboard, palette).
import { dom, state, readJSON, setHistory, nodeEl } from "./core.js";
import { applyView, fit, revealNodes } from "./view.js";
import { selectNodes, markSelection, updateTools } from "./selection.js";
import "./panels.js";
import "./edits.js";
import "./input.js";

if (dom) {
  // Below 768 px the builder is read-only: pan and zoom, no edits.
  var narrow = window.matchMedia("(max-width: 767px)");
  var setReadOnly = function () {
    state.readOnly = narrow.matches;
    dom.svg.classList.toggle("readonly", state.readOnly);
    dom.root.classList.toggle("is-readonly", state.readOnly);
    setHistory(state.history);
    updateTools();
  };
  narrow.addEventListener("change", setReadOnly);
  setReadOnly();

  var saved = readJSON(dom.root.dataset.viewport) || {};
  var meta = document.getElementById("history-state");
  if (meta) setHistory({ undo: meta.dataset.undo || null, redo: meta.dataset.redo || null });
  if (typeof saved.k === "number" && !state.readOnly) {
    state.view = { x: saved.x, y: saved.y, k: saved.k };
    applyView();
  } else {
    fit(true);
  }
  var initial = dom.root.dataset.selected;
  if (initial && nodeEl(initial)) {
    // The server already rendered this step's inspector (?node=...).
    selectNodes([initial], { focus: true });
    revealNodes([initial]);
  } else {
    markSelection();
  }
  dom.root.dataset.ready = "true";
}
