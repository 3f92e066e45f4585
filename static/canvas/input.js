// Pointer, keyboard and toolbar input. Everything the mouse does has a
// keyboard way: Tab reaches steps, connections, their "+" and the
// triggers; Enter opens; C connects; Ctrl+Z/C/V/D undo, copy, paste,
// duplicate; Delete removes; arrow keys move a step.
import { dom, state, say, nodeEl, pos, snap, moveNode, edgePath, portPoint, typing, GRID, W, H } from "./core.js";
import { applyView, saveView, zoomAt, zoomTo, fit, toCanvas, minimapPan, revealNodes } from "./view.js";
import {
  selectNodes, toggleNode, selectEdge, clearSelection, selectedNodes, markSelection
} from "./selection.js";
import { openNode, openTriggers, closePanel } from "./panels.js";
import * as edits from "./edits.js";

var gesture = null;

// -- the canvas ---------------------------------------------------------------------

dom.svg.addEventListener("pointerdown", function (event) {
  if (event.button !== 0) return;
  var t = event.target;
  var port = t.closest(".port-out"), node = t.closest(".node"), edge = t.closest(".edge");
  var plus = t.closest(".edge-add"), trigger = t.closest(".trigger");
  var start = toCanvas(event.clientX, event.clientY);
  if (state.readOnly) {
    gesture = { mode: "pan", sx: event.clientX, sy: event.clientY, vx: state.view.x, vy: state.view.y, moved: false };
  } else if (plus) {
    gesture = { mode: "plus", id: plus.dataset.edgeId };
  } else if (trigger) {
    gesture = { mode: "trigger", id: trigger.dataset.triggerId };
  } else if (port && node) {
    var from = portPoint(node, port.dataset.port);
    gesture = { mode: "connect", source: node.dataset.nodeId, port: port.dataset.port, from: from };
    dom.wire.setAttribute("d", edgePath(from.x, from.y, start.x, start.y));
    dom.svg.classList.add("connecting");
  } else if (node) {
    var id = node.dataset.nodeId, additive = event.shiftKey || event.metaKey || event.ctrlKey;
    var group = state.selection.nodes.has(id) && !additive ? selectedNodes().map(nodeEl).filter(Boolean) : [node];
    gesture = {
      mode: "drag", el: node, additive: additive, start: start, moved: false,
      group: group.map(function (el) { return { el: el, origin: pos(el) }; })
    };
  } else if (edge) {
    gesture = { mode: "edge", id: edge.dataset.edgeId };
  } else if (event.shiftKey) {
    gesture = { mode: "marquee", start: start };
  } else {
    gesture = { mode: "pan", sx: event.clientX, sy: event.clientY, vx: state.view.x, vy: state.view.y, moved: false };
  }
  dom.svg.setPointerCapture(event.pointerId);
  event.preventDefault();
});

function targetAt(event, source) {
  var over = document.elementFromPoint(event.clientX, event.clientY);
  var target = over && over.closest && over.closest("#graph .node");
  return target && target.dataset.nodeId !== source ? target : null;
}

dom.svg.addEventListener("pointermove", function (event) {
  var g = gesture;
  if (!g) return;
  var p = toCanvas(event.clientX, event.clientY);
  if (g.mode === "connect") {
    dom.wire.setAttribute("d", edgePath(g.from.x, g.from.y, p.x, p.y));
    dom.graph.querySelectorAll(".drop-target").forEach(function (el) { el.classList.remove("drop-target"); });
    var target = targetAt(event, g.source);
    if (target) target.classList.add("drop-target");
  } else if (g.mode === "drag") {
    var dx = p.x - g.start.x, dy = p.y - g.start.y;
    if (!g.moved && Math.abs(dx) + Math.abs(dy) < 3 / state.view.k) return;
    g.moved = true;
    g.group.forEach(function (item) {
      item.el.classList.add("dragging");
      moveNode(item.el, item.origin.x + dx, item.origin.y + dy);
    });
  } else if (g.mode === "pan") {
    var mx = event.clientX - g.sx, my = event.clientY - g.sy;
    if (Math.abs(mx) + Math.abs(my) > 3) g.moved = true;
    state.view.x = g.vx + mx;
    state.view.y = g.vy + my;
    applyView();
  } else if (g.mode === "marquee") {
    var x = Math.min(g.start.x, p.x), y = Math.min(g.start.y, p.y);
    g.box = { x: x, y: y, w: Math.abs(p.x - g.start.x), h: Math.abs(p.y - g.start.y) };
    dom.marquee.setAttribute("x", x); dom.marquee.setAttribute("y", y);
    dom.marquee.setAttribute("width", g.box.w); dom.marquee.setAttribute("height", g.box.h);
    dom.marquee.classList.add("on");
  }
});

function endGesture(event) {
  var g = gesture;
  gesture = null;
  if (!g) return;
  if (g.mode === "connect") {
    dom.wire.setAttribute("d", "");
    dom.svg.classList.remove("connecting");
    dom.graph.querySelectorAll(".drop-target").forEach(function (el) { el.classList.remove("drop-target"); });
    var target = event && targetAt(event, g.source);
    if (!target) { say("Drop the connection on another step."); return; }
    edits.connect(g.source, g.port, target.dataset.nodeId);
  } else if (g.mode === "drag") {
    g.group.forEach(function (item) { item.el.classList.remove("dragging"); });
    var id = g.el.dataset.nodeId;
    if (!g.moved) {
      if (g.additive) { toggleNode(id); return; }
      // pointerdown's preventDefault kept focus where it was: move it here,
      // so Delete and the arrow keys act on this step.
      openNode(id).then(function (ok) { if (ok) selectNodes([id], { focus: true }); });
      return;
    }
    var els = g.group.map(function (item) {
      var p = pos(item.el);
      moveNode(item.el, snap(p.x), snap(p.y));
      return item.el;
    });
    edits.savePositions(els, "move");
  } else if (g.mode === "edge") {
    selectEdge(g.id);
    var edge = dom.graph.querySelector('.edge[data-edge-id="' + CSS.escape(g.id) + '"]');
    if (edge) edge.focus({ preventScroll: true });
  } else if (g.mode === "plus") {
    edits.armInsert(g.id);
  } else if (g.mode === "trigger") {
    openTriggers(g.id);
  } else if (g.mode === "marquee") {
    dom.marquee.classList.remove("on");
    if (!g.box) return;
    var b = g.box, picked = new Set(state.selection.nodes);
    dom.graph.querySelectorAll(".node").forEach(function (el) {
      var p = pos(el);
      if (p.x < b.x + b.w && p.x + W > b.x && p.y < b.y + b.h && p.y + H > b.y) picked.add(el.dataset.nodeId);
    });
    selectNodes(Array.from(picked));
  } else if (g.mode === "pan") {
    if (g.moved) saveView(); else clearSelection();
  }
}

dom.svg.addEventListener("pointerup", endGesture);
dom.svg.addEventListener("pointercancel", function () {
  if (gesture && gesture.mode === "connect") { dom.wire.setAttribute("d", ""); dom.svg.classList.remove("connecting"); }
  dom.marquee.classList.remove("on");
  gesture = null;
});

dom.svg.addEventListener("wheel", function (event) {
  event.preventDefault();
  var r = dom.svg.getBoundingClientRect();
  zoomAt(Math.exp(-event.deltaY * 0.0015), event.clientX - r.left, event.clientY - r.top);
}, { passive: false });

// The minimap: press or drag to look elsewhere.
if (dom.minimap) {
  var mapDrag = false;
  dom.minimap.addEventListener("pointerdown", function (event) {
    mapDrag = true; dom.minimap.setPointerCapture(event.pointerId); minimapPan(event.clientX, event.clientY);
  });
  dom.minimap.addEventListener("pointermove", function (event) { if (mapDrag) minimapPan(event.clientX, event.clientY); });
  dom.minimap.addEventListener("pointerup", function () { mapDrag = false; saveView(); });
}

// -- toolbar -------------------------------------------------------------------------

document.querySelectorAll("[data-zoom]").forEach(function (button) {
  button.addEventListener("click", function () {
    var r = dom.svg.getBoundingClientRect(), how = button.dataset.zoom;
    if (how === "fit") fit();
    else if (how === "reset") zoomTo(1);
    else zoomAt(how === "in" ? 1.2 : 1 / 1.2, r.width / 2, r.height / 2);
  });
});

var actions = {
  undo: edits.undo, redo: edits.redo, connect: edits.openConnect, duplicate: edits.duplicate,
  paste: edits.paste, delete: edits.deleteSelection, tidy: edits.tidy
};
document.querySelectorAll(".canvas-tools [data-action]").forEach(function (button) {
  button.addEventListener("click", function () { actions[button.dataset.action](); });
});
dom.statusUndo.addEventListener("click", function () { edits.undo(); });

// -- palette: search, click (or Enter) to add, drag to place --------------------------

var search = document.getElementById("palette-q");
var items = Array.prototype.slice.call(dom.palette.querySelectorAll(".palette-item"));

function visibleItems() { return items.filter(function (item) { return !item.hidden; }); }

search.addEventListener("input", function () {
  var words = search.value.toLowerCase().trim().split(/\s+/).filter(Boolean);
  items.forEach(function (item) {
    var text = item.dataset.search;
    item.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
  });
  dom.palette.querySelectorAll(".palette-section").forEach(function (section) {
    section.hidden = !section.querySelector(".palette-item:not([hidden])");
  });
  document.getElementById("palette-none").hidden = visibleItems().length > 0;
});

search.addEventListener("keydown", function (event) {
  var shown = visibleItems();
  if (event.key === "Enter") {
    event.preventDefault();
    if (shown.length) edits.addStep(shown[0].dataset.nodeType);
  } else if (event.key === "ArrowDown" && shown.length) {
    event.preventDefault();
    shown[0].focus();
  } else if (event.key === "Escape") {
    if (state.insertEdge) edits.cancelInsert();
    else if (search.value) { search.value = ""; search.dispatchEvent(new Event("input")); }
  }
});

dom.palette.addEventListener("keydown", function (event) {
  var item = event.target.closest(".palette-item");
  if (!item || !/^Arrow(Up|Down)$/.test(event.key)) return;
  event.preventDefault();
  var shown = visibleItems(), i = shown.indexOf(item);
  var next = shown[i + (event.key === "ArrowDown" ? 1 : -1)];
  if (next) next.focus(); else if (event.key === "ArrowUp") search.focus();
});

var paletteDrag = null;

dom.palette.addEventListener("pointerdown", function (event) {
  var item = event.target.closest(".palette-item");
  if (!item || event.button !== 0 || state.readOnly) return;
  paletteDrag = { item: item, type: item.dataset.nodeType, sx: event.clientX, sy: event.clientY, ghost: null };
  item.setPointerCapture(event.pointerId);
});

dom.palette.addEventListener("pointermove", function (event) {
  var d = paletteDrag;
  if (!d) return;
  if (!d.ghost) {
    if (Math.abs(event.clientX - d.sx) + Math.abs(event.clientY - d.sy) < 5) return;
    d.ghost = d.item.cloneNode(true);
    d.ghost.classList.add("palette-ghost");
    d.ghost.removeAttribute("name");
    document.body.appendChild(d.ghost);
  }
  d.ghost.style.left = event.clientX + 8 + "px";
  d.ghost.style.top = event.clientY + 8 + "px";
});

dom.palette.addEventListener("pointerup", function (event) {
  var d = paletteDrag;
  paletteDrag = null;
  if (!d || !d.ghost) return;
  d.ghost.remove();
  // The click that follows this pointerup must not add a second step.
  d.item.dataset.dragged = "1";
  window.setTimeout(function () { delete d.item.dataset.dragged; }, 0);
  // Anywhere over the canvas area counts, the toolbar and problems too:
  // the step then lands in the clear part of the canvas.
  var r = document.querySelector(".stage").getBoundingClientRect();
  if (event.clientX < r.left || event.clientX > r.right || event.clientY < r.top || event.clientY > r.bottom) {
    say("Drop the step on the canvas to add it.");
    return;
  }
  edits.dropStep(d.type, event.clientX, event.clientY);
});

dom.palette.addEventListener("click", function (event) {
  var item = event.target.closest(".palette-item");
  if (!item) return;
  event.preventDefault();
  if (item.dataset.dragged) { delete item.dataset.dragged; return; }
  edits.addStep(item.dataset.nodeType);
});

// -- keyboard --------------------------------------------------------------------------

function onCanvas(el) {
  return !el || el === document.body || dom.svg.contains(el);
}

document.addEventListener("keydown", function (event) {
  if (document.querySelector("dialog[open]")) return;
  var focused = document.activeElement;
  if (typing(focused)) return;
  var mod = event.ctrlKey || event.metaKey, key = event.key.toLowerCase();
  var focusedNode = focused && focused.closest && focused.closest("#graph .node");
  var focusedEdge = focused && focused.closest && focused.closest("#graph .edge");
  var focusedPlus = focused && focused.closest && focused.closest("#graph .edge-add");
  var focusedTrigger = focused && focused.closest && focused.closest("#graph .trigger");
  if (mod && key === "z") {
    event.preventDefault();
    if (event.shiftKey) edits.redo(); else edits.undo();
  } else if (mod && key === "y") {
    event.preventDefault(); edits.redo();
  } else if (mod && key === "c" && selectedNodes().length) {
    event.preventDefault(); edits.copySelection();
  } else if (mod && key === "v") {
    event.preventDefault(); edits.paste();
  } else if (mod && key === "d") {
    event.preventDefault(); edits.duplicate();
  } else if (mod && key === "a" && onCanvas(focused)) {
    event.preventDefault();
    selectNodes(Array.prototype.map.call(dom.graph.querySelectorAll(".node"), function (el) { return el.dataset.nodeId; }));
  } else if (mod) {
    return;
  } else if ((event.key === "Enter" || event.key === " ") && (focusedNode || focusedEdge || focusedPlus || focusedTrigger)) {
    event.preventDefault();
    if (focusedPlus) edits.armInsert(focusedPlus.dataset.edgeId);
    else if (focusedTrigger) openTriggers(focusedTrigger.dataset.triggerId);
    else if (focusedNode) {
      var id = focusedNode.dataset.nodeId;
      openNode(id).then(function (ok) { if (ok) selectNodes([id]); });
    } else selectEdge(focusedEdge.dataset.edgeId);
  } else if (event.key === "Delete" || event.key === "Backspace") {
    // Only from the canvas: Backspace on a focused panel button must not delete a step.
    if (!onCanvas(focused)) return;
    if (focusedNode && !state.selection.nodes.has(focusedNode.dataset.nodeId)) selectNodes([focusedNode.dataset.nodeId]);
    if (focusedEdge) selectEdge(focusedEdge.dataset.edgeId);
    if (state.selection.nodes.size || state.selection.edge) { event.preventDefault(); edits.deleteSelection(); }
  } else if (key === "c" && !event.shiftKey && !event.altKey) {
    if (focusedNode) selectNodes([focusedNode.dataset.nodeId]);
    if (state.selection.nodes.size === 1) { event.preventDefault(); edits.openConnect(); }
  } else if (event.key === "Escape") {
    if (state.insertEdge) edits.cancelInsert(); else clearSelection();
  } else if (/^Arrow/.test(event.key) && focusedNode && !state.readOnly) {
    event.preventDefault();
    var step = event.shiftKey ? 48 : GRID * 2;
    var dx = { ArrowLeft: -step, ArrowRight: step }[event.key] || 0;
    var dy = { ArrowUp: -step, ArrowDown: step }[event.key] || 0;
    var group = state.selection.nodes.has(focusedNode.dataset.nodeId) ? selectedNodes().map(nodeEl).filter(Boolean) : [focusedNode];
    group.forEach(function (el) { var p = pos(el); moveNode(el, p.x + dx, p.y + dy); });
    window.clearTimeout(arrowTimer);
    arrowTimer = window.setTimeout(function () { edits.savePositions(group.filter(function (el) { return el.isConnected; }), "move"); }, 400);
  }
});
var arrowTimer = null;

// -- links and buttons in panels --------------------------------------------------------

document.addEventListener("click", function (event) {
  var link = event.target.closest("[data-select-node]");
  if (link) {
    var id = link.getAttribute("data-select-node");
    if (nodeEl(id)) {
      event.preventDefault();
      openNode(id).then(function (ok) {
        if (!ok) return;
        selectNodes([id], { focus: true });
        revealNodes([id]);
      });
    }
    return;
  }
  var del = event.target.closest("[data-delete-node]");
  if (del) {
    event.preventDefault();
    selectNodes([del.getAttribute("data-delete-node")]);
    edits.deleteSelection();
    return;
  }
  if (event.target.closest("[data-close-panel]")) {
    event.preventDefault();
    closePanel().then(function (ok) { if (ok && state.selection.nodes.size) markSelection(); });
  }
});
