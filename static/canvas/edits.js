// Canvas edits. Each one is a request the server records for undo; the
// canvas is then redrawn from the server, which stays the one source of
// truth for what is drawn. The view never moves by itself, except to
// bring a new step into sight.
import {
  dom, state, send, url, say, graphChanged, setHistory, nodeEl, allNodes, pos, nodeName, snap, W, H
} from "./core.js";
import { applyView, fit, placeInView, revealNodes, toCanvas, safeRect } from "./view.js";
import {
  markSelection, selectNodes, selectedNodes, clearSelection, readClipboard, writeClipboard, notePaste
} from "./selection.js";
import { paintAll, openNode, reloadInspector, closePanel, discardChanges } from "./panels.js";

// -- redraw ------------------------------------------------------------------------------

var redraw = null;

export function refresh() {
  window.clearTimeout(refresh.timer);
  return new Promise(function (resolve) {
    refresh.timer = window.setTimeout(function () {
      redraw = fetch(url("/graph"), { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .then(function (r) {
          if (r.redirected) throw new Error("You were signed out: reload the page to sign in again.");
          if (!r.ok) throw new Error("Could not redraw the canvas (" + r.status + ").");
          return r.text();
        })
        .then(function (html) {
          dom.graph.innerHTML = html;
          var empty = document.getElementById("canvas-empty");
          if (empty && dom.graph.querySelector(".node")) empty.remove();
          var meta = document.getElementById("history-state");
          if (meta) setHistory({ undo: meta.dataset.undo || null, redo: meta.dataset.redo || null });
          if (state.insertEdge && !dom.graph.querySelector('.edge[data-edge-id="' + CSS.escape(state.insertEdge) + '"]')) {
            cancelInsert();
          }
          if (state.pendingSelect) {
            var ids = state.pendingSelect.filter(function (id) { return nodeEl(id); });
            state.pendingSelect = null;
            selectNodes(ids);
            if (state.pendingReveal) revealNodes(ids);
            if (ids.length === 1 && state.pendingOpen) openNode(ids[0]);
          } else {
            markSelection();
          }
          state.pendingReveal = false;
          state.pendingOpen = false;
          paintAll();
          applyView();
          resolve();
        })
        .catch(function (err) { say(err.message, { error: true }); resolve(); });
    }, 30);
  });
}

document.body.addEventListener("graph-changed", function () { refresh(); });

function fail(err) { say(err.message, { error: true }); }

// -- adding steps ------------------------------------------------------------------------

export function armInsert(edgeId) {
  cancelInsert();
  var edge = dom.graph.querySelector('.edge[data-edge-id="' + CSS.escape(edgeId) + '"]');
  if (!edge) return;
  state.insertEdge = String(edgeId);
  var plus = dom.graph.querySelector('.edge-add[data-edge-id="' + CSS.escape(edgeId) + '"]');
  if (plus) plus.classList.add("active");
  var s = nodeEl(edge.dataset.source), t = nodeEl(edge.dataset.target);
  var note = document.getElementById("insert-note");
  note.textContent = "Choose a step to insert between “" + (s ? nodeName(s) : "?") + "” and “" +
    (t ? nodeName(t) : "?") + "”. Esc cancels.";
  note.hidden = false;
  var search = document.getElementById("palette-q");
  if (search) search.focus();
}

export function cancelInsert() {
  state.insertEdge = null;
  dom.graph.querySelectorAll(".edge-add.active").forEach(function (el) { el.classList.remove("active"); });
  var note = document.getElementById("insert-note");
  if (note) note.hidden = true;
}

function added(data, message) {
  state.pendingSelect = [data.node_id];
  state.pendingReveal = true;
  state.pendingOpen = true;
  say(message, { undoable: true });
  graphChanged();
}

// Click or keyboard: after the selected step (connected), on the armed
// connection, or in free space in view.
export function addStep(type) {
  if (state.readOnly) return;
  var body = { node_type: type };
  var message = "Step added.";
  var selected = selectedNodes();
  if (state.insertEdge) {
    body.edge = state.insertEdge;
    message = "Step inserted.";
  } else if (selected.length === 1 && nodeEl(selected[0]) && nodeEl(selected[0]).querySelector(".port-out")) {
    body.after = selected[0];
    message = "Step added after “" + nodeName(nodeEl(selected[0])) + "”.";
  } else {
    var s = safeRect(), v = state.view;
    var at = placeInView((s.left + (s.right - s.left) / 2 - v.x) / v.k - W / 2, (s.top - v.y) / v.k + 24);
    body.x = snap(at.x); body.y = snap(at.y);
  }
  cancelInsert();
  return send("POST", url("/nodes"), body).then(function (data) { added(data, message); }).catch(fail);
}

// A drop: where the pointer let go, pulled clear of the canvas's edges and panels.
export function dropStep(type, clientX, clientY) {
  if (state.readOnly) return;
  var p = toCanvas(clientX, clientY);
  var at = placeInView(p.x - W / 2, p.y - H / 2);
  cancelInsert();
  return send("POST", url("/nodes"), { node_type: type, x: snap(at.x), y: snap(at.y) })
    .then(function (data) { added(data, "Step added."); }).catch(fail);
}

// -- moving -----------------------------------------------------------------------------

export function savePositions(els, reason) {
  if (els.length === 1) {
    var el = els[0];
    return send("POST", url("/nodes/" + encodeURIComponent(el.dataset.nodeId) + "/position"), pos(el))
      .catch(function (err) { fail(err); refresh(); });
  }
  var positions = {};
  els.forEach(function (el) { var p = pos(el); positions[el.dataset.nodeId] = [p.x, p.y]; });
  return send("POST", url("/positions"), { positions: positions, reason: reason || "move" })
    .catch(function (err) { fail(err); refresh(); });
}

// Auto-layout with dagre (npm @dagrejs/dagre, vendored): top to bottom,
// anchored at the old top-left corner so the view does not jump away.
export function tidy() {
  if (state.readOnly || !window.dagre) return;
  var nodes = allNodes();
  if (!nodes.length) return;
  var g = new window.dagre.graphlib.Graph();
  g.setGraph({ rankdir: "TB", nodesep: 48, ranksep: 72, marginx: 0, marginy: 0 });
  g.setDefaultEdgeLabel(function () { return {}; });
  var minX = Infinity, minY = Infinity;
  nodes.forEach(function (el) {
    var p = pos(el);
    minX = Math.min(minX, p.x); minY = Math.min(minY, p.y);
  });
  // dagre keeps the order it was given wherever crossings do not decide:
  // steps go in depth first from the entry, each step's connections in the
  // order of their ports on the card (yes left of no, variants a, b, c...),
  // so tidy never swaps a branch to the other side.
  var out = {};
  Array.prototype.slice.call(dom.graph.querySelectorAll(".edge")).forEach(function (edge) {
    (out[edge.dataset.source] = out[edge.dataset.source] || []).push(edge);
  });
  Object.keys(out).forEach(function (id) {
    var el = nodeEl(id);
    out[id].sort(function (a, b) { return portX(el, a.dataset.port) - portX(el, b.dataset.port); });
  });
  var seen = {}, order = [];
  function visit(id) {
    if (seen[id] || !nodeEl(id)) return;
    seen[id] = true;
    order.push(id);
    (out[id] || []).forEach(function (edge) { visit(edge.dataset.target); });
  }
  var layer = document.getElementById("triggers");
  var entry = layer && layer.dataset.entry;
  if (entry) visit(entry);
  nodes.forEach(function (el) { visit(el.dataset.nodeId); });
  order.forEach(function (id) { g.setNode(id, { width: W, height: H }); });
  order.forEach(function (id) {
    (out[id] || []).forEach(function (edge) {
      if (seen[edge.dataset.target]) g.setEdge(id, edge.dataset.target);
    });
  });
  window.dagre.layout(g);
  var laidMinX = Infinity, laidMinY = Infinity;
  g.nodes().forEach(function (id) {
    var n = g.node(id);
    laidMinX = Math.min(laidMinX, n.x - W / 2); laidMinY = Math.min(laidMinY, n.y - H / 2);
  });
  var positions = {};
  g.nodes().forEach(function (id) {
    var n = g.node(id);
    positions[id] = [snap(n.x - W / 2 - laidMinX + minX), snap(n.y - H / 2 - laidMinY + minY)];
  });
  return send("POST", url("/positions"), { positions: positions, reason: "tidy" })
    .then(function () {
      say("Tidied.", { undoable: true });
      return refresh();
    })
    .then(function () { fit(); })
    .catch(fail);
}

function portX(el, key) {
  var port = el && el.querySelector('.port-out[data-port="' + CSS.escape(key || "") + '"]');
  return port ? parseFloat(port.dataset.px) : W / 2;
}

// -- deleting ------------------------------------------------------------------------------

export function deleteSelection() {
  if (state.readOnly) return;
  var ids = selectedNodes();
  var inspector = document.getElementById("inspector");
  var request;
  if (ids.length) {
    request = send("POST", url("/nodes/delete"), { nodes: ids }).then(function (data) {
      if (inspector && ids.indexOf(inspector.dataset.nodeId) >= 0) {
        discardChanges();
        closePanel();
      }
      say(ids.length === 1 ? "Step deleted." : data.deleted.length + " steps deleted.", { undoable: true });
    });
  } else if (state.selection.edge) {
    request = send("POST", url("/edges/" + encodeURIComponent(state.selection.edge) + "/delete"))
      .then(function () { say("Connection deleted.", { undoable: true }); });
  } else {
    return;
  }
  return request.then(function () { clearSelection(); graphChanged(); }).catch(fail);
}

// -- undo / redo --------------------------------------------------------------------------

function historyStep(which) {
  if (state.readOnly) return;
  if (!state.history[which]) { say(which === "undo" ? "Nothing to undo." : "Nothing to redo."); return; }
  return send("POST", url("/" + which)).then(function (data) {
    say((which === "undo" ? "Undone: " : "Redone: ") + data.label + ".");
    return refresh();
  }).then(reloadInspector).catch(fail);
}

export function undo() { return historyStep("undo"); }
export function redo() { return historyStep("redo"); }

// -- copy, paste, duplicate ------------------------------------------------------------------

export function copySelection() {
  var ids = selectedNodes();
  if (!ids.length) return Promise.resolve(null);
  return send("POST", url("/copy"), { nodes: ids }).then(function (doc) {
    writeClipboard(doc);
    say(ids.length === 1 ? "Step copied." : ids.length + " steps copied.");
    return doc;
  }).catch(fail);
}

function pasteDocument(doc, at, message) {
  return send("POST", url("/paste"), { document: doc, x: snap(at.x), y: snap(at.y) }).then(function (data) {
    state.pendingSelect = data.node_ids;
    state.pendingReveal = true;
    say(message, { undoable: true });
    graphChanged();
  }).catch(fail);
}

function origin(doc) {
  return doc.nodes.reduce(function (o, n) { return { x: Math.min(o.x, n.x), y: Math.min(o.y, n.y) }; }, { x: Infinity, y: Infinity });
}

export function paste() {
  if (state.readOnly) return;
  var data = readClipboard();
  if (!data) { say("Nothing copied yet: select steps and press Ctrl+C."); return; }
  var at;
  if (String(data.workflow) === String(state.workflow)) {
    var o = origin(data.document), step = 40 * ((data.pasted || 0) + 1);
    at = placeInView(o.x + step, o.y + step);
  } else {
    var s = safeRect(), v = state.view;
    at = placeInView((s.left + 40 - v.x) / v.k, (s.top + 16 - v.y) / v.k);
  }
  notePaste(data);
  var count = data.document.nodes.length;
  return pasteDocument(data.document, at, count === 1 ? "Step pasted." : count + " steps pasted.");
}

export function duplicate() {
  if (state.readOnly) return;
  var ids = selectedNodes();
  if (!ids.length) return;
  return send("POST", url("/copy"), { nodes: ids }).then(function (doc) {
    var o = origin(doc);
    return pasteDocument(doc, placeInView(o.x + 40, o.y + 40), ids.length === 1 ? "Step duplicated." : ids.length + " steps duplicated.");
  }).catch(fail);
}

// -- connect from the keyboard ------------------------------------------------------------

var connectDialog = document.getElementById("connect-dialog");

export function openConnect() {
  if (state.readOnly) return;
  var ids = selectedNodes();
  var source = ids.length === 1 && nodeEl(ids[0]);
  if (!source) { say("Select one step first, then choose “Connect to…”."); return; }
  var ports = Array.prototype.slice.call(source.querySelectorAll(".port-out"));
  if (!ports.length) { say("This step has no outputs yet: fix its settings first.", { error: true }); return; }
  var portSelect = document.getElementById("connect-port");
  var targetSelect = document.getElementById("connect-target");
  document.getElementById("connect-source").textContent = "“" + nodeName(source) + "”";
  portSelect.innerHTML = "";
  ports.forEach(function (port) {
    var used = dom.graph.querySelector('.edge[data-source="' + CSS.escape(source.dataset.nodeId) + '"][data-port="' + CSS.escape(port.dataset.port) + '"]');
    var option = new Option((port.dataset.label || "Next") + (used ? " (connected)" : ""), port.dataset.port);
    option.disabled = !!used;
    portSelect.add(option);
  });
  var free = Array.prototype.find.call(portSelect.options, function (o) { return !o.disabled; });
  if (!free) { say("Every output of this step is connected: delete a connection first.", { error: true }); return; }
  portSelect.value = free.value;
  document.getElementById("connect-port-field").hidden = ports.length === 1;
  targetSelect.innerHTML = "";
  allNodes()
    .filter(function (el) { return el !== source; })
    .sort(function (a, b) { return pos(a).y - pos(b).y || pos(a).x - pos(b).x; })
    .forEach(function (el) { targetSelect.add(new Option(nodeName(el) + " (" + el.dataset.nodeId + ")", el.dataset.nodeId)); });
  if (!targetSelect.options.length) { say("Add another step to connect to."); return; }
  connectDialog.returnValue = "";
  connectDialog.showModal();
  targetSelect.focus();
  connectDialog.addEventListener("close", function onClose() {
    connectDialog.removeEventListener("close", onClose);
    source.focus({ preventScroll: true });
    if (connectDialog.returnValue !== "connect") return;
    connect(source.dataset.nodeId, portSelect.value, targetSelect.value);
  });
}

export function connect(source, port, target) {
  return send("POST", url("/edges"), { source: source, port: port, target: target })
    .then(function () { say("Connected.", { undoable: true }); graphChanged(); })
    .catch(fail);
}
