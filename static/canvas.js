// The builder canvas: drag steps from the palette, move them, connect ports,
// select and delete, pan and zoom. The server draws the graph (SVG fragment
// /graph) and owns every change; this script only sends edits as they happen
// and redraws from the server afterwards, so a reload shows the same canvas.
// No inline scripts (CSP): data arrives in data-* attributes.
(function () {
  "use strict";

  var root = document.getElementById("builder");
  if (!root) return;

  var W = 200, H = 64, GRID = 8, MIN_K = 0.2, MAX_K = 3;
  var base = root.dataset.base;
  var svg = document.getElementById("canvas");
  var viewport = document.getElementById("viewport");
  var graph = document.getElementById("graph");
  var wire = document.getElementById("wire");
  var statusBox = document.getElementById("builder-status");
  var sidePanel = document.getElementById("side-panel");
  var emptyPanel = document.getElementById("empty-panel-template");
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  var view = readJSON(root.dataset.viewport) || {};
  var hadView = typeof view.k === "number";
  if (!hadView) view = { x: 40, y: 40, k: 1 };
  var selection = null; // {kind: "node"|"edge", id: string}
  var pendingSelect = null;
  var gesture = null;
  var liveCounts = null, overlayData = null, testPath = [];

  function readJSON(text) {
    try { return text ? JSON.parse(text) : null; } catch (e) { return null; }
  }

  function say(message, isError) {
    statusBox.textContent = message || "";
    statusBox.classList.toggle("error", !!isError);
    if (message && !isError) {
      window.clearTimeout(say.timer);
      say.timer = window.setTimeout(function () { statusBox.textContent = ""; }, 4000);
    }
  }

  // Every write carries the CSRF token; HX-Request marks it as a fragment call.
  function send(method, url, body) {
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
        return data;
      });
    });
  }

  function graphChanged() {
    document.body.dispatchEvent(new CustomEvent("graph-changed", { bubbles: true }));
  }

  // -- view (pan and zoom) -------------------------------------------------------

  function applyView() {
    viewport.setAttribute("transform", "translate(" + view.x + "," + view.y + ") scale(" + view.k + ")");
  }

  function saveView() {
    window.clearTimeout(saveView.timer);
    saveView.timer = window.setTimeout(function () {
      send("POST", base + "/viewport", view).catch(function () {});
    }, 600);
  }

  function zoomAt(factor, cx, cy) {
    var k = Math.min(MAX_K, Math.max(MIN_K, view.k * factor));
    view.x = cx - (cx - view.x) * (k / view.k);
    view.y = cy - (cy - view.y) * (k / view.k);
    view.k = k;
    applyView();
    saveView();
  }

  function toCanvas(clientX, clientY) {
    var r = svg.getBoundingClientRect();
    return { x: (clientX - r.left - view.x) / view.k, y: (clientY - r.top - view.y) / view.k };
  }

  function fit(keep) {
    var nodes = graph.querySelectorAll(".node");
    if (!nodes.length) { view = { x: 40, y: 40, k: 1 }; applyView(); return; }
    var minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    nodes.forEach(function (el) {
      var p = pos(el);
      minX = Math.min(minX, p.x); minY = Math.min(minY, p.y);
      maxX = Math.max(maxX, p.x + W + 90); maxY = Math.max(maxY, p.y + H + 30);
    });
    // Leave room at the top for the floating toolbar.
    var r = svg.getBoundingClientRect(), pad = 40, top = 64;
    var k = Math.min(1.1, (r.width - 2 * pad) / (maxX - minX), (r.height - top - pad) / (maxY - minY));
    k = Math.min(MAX_K, Math.max(MIN_K, k));
    view = {
      k: k,
      x: (r.width - (maxX - minX) * k) / 2 - minX * k,
      y: top + (r.height - top - pad - (maxY - minY) * k) / 2 - minY * k
    };
    applyView();
    if (!keep) saveView();
  }

  function center(el) {
    var p = pos(el), r = svg.getBoundingClientRect();
    view.x = r.width / 2 - (p.x + W / 2) * view.k;
    view.y = r.height / 2 - (p.y + H / 2) * view.k;
    applyView();
  }

  // -- geometry (mirrors app/web/builder_graph.py) ------------------------------------

  function nodeEl(id) {
    return graph.querySelector('.node[data-node-id="' + CSS.escape(id) + '"]');
  }

  function pos(el) {
    return { x: parseFloat(el.dataset.x) || 0, y: parseFloat(el.dataset.y) || 0 };
  }

  function edgePath(sx, sy, tx, ty) {
    var bend = Math.max(40, Math.abs(ty - sy) / 2);
    return "M" + sx + "," + sy + " C" + sx + "," + (sy + bend) + " " + tx + "," + (ty - bend) + " " + tx + "," + ty;
  }

  function portPoint(nodeElement, key) {
    var p = pos(nodeElement);
    var port = nodeElement.querySelector('.port-out[data-port="' + CSS.escape(key) + '"]');
    var px = port ? parseFloat(port.dataset.px) : W / 2;
    var py = port ? parseFloat(port.dataset.py) : H;
    return { x: p.x + px, y: p.y + py };
  }

  function layoutEdge(edge) {
    var s = nodeEl(edge.dataset.source), t = nodeEl(edge.dataset.target);
    if (!s || !t) return;
    var a = portPoint(s, edge.dataset.port), b = pos(t);
    var tx = b.x + W / 2, ty = b.y;
    var d = edgePath(a.x, a.y, tx, ty);
    edge.querySelectorAll("path").forEach(function (path) { path.setAttribute("d", d); });
    edge.querySelectorAll("text").forEach(function (text) {
      text.setAttribute("x", (a.x + tx) / 2);
      text.setAttribute("y", (a.y + ty) / 2 + (text.classList.contains("edge-count") ? 14 : 0));
    });
  }

  function moveNode(el, x, y) {
    el.dataset.x = x;
    el.dataset.y = y;
    el.setAttribute("transform", "translate(" + x + "," + y + ")");
    var id = el.dataset.nodeId;
    graph.querySelectorAll(".edge").forEach(function (edge) {
      if (edge.dataset.source === id || edge.dataset.target === id) layoutEdge(edge);
    });
  }

  function snap(value) { return Math.round(value / GRID) * GRID; }

  // -- redraw from the server ---------------------------------------------------------

  function refresh() {
    window.clearTimeout(refresh.timer);
    refresh.timer = window.setTimeout(function () {
      fetch(base + "/graph", { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .then(function (r) {
          if (r.redirected) return Promise.reject(new Error("You were signed out: reload the page to sign in again."));
          return r.ok ? r.text() : Promise.reject(new Error("Could not redraw the canvas (" + r.status + ")."));
        })
        .then(function (html) {
          graph.innerHTML = html;
          var empty = document.getElementById("canvas-empty");
          if (empty && graph.querySelector(".node")) empty.remove();
          if (pendingSelect) {
            var id = pendingSelect;
            pendingSelect = null;
            select("node", id, { open: true });
          } else {
            markSelection();
          }
          paintLive(); paintOverlay(); paintPath();
        })
        .catch(function (err) { say(err.message, true); });
    }, 30);
  }

  // -- selection ------------------------------------------------------------------------

  function selectedEl() {
    if (!selection) return null;
    if (selection.kind === "node") return nodeEl(selection.id);
    return graph.querySelector('.edge[data-edge-id="' + CSS.escape(selection.id) + '"]');
  }

  function markSelection() {
    graph.querySelectorAll(".selected").forEach(function (el) { el.classList.remove("selected"); });
    var el = selectedEl();
    if (el) el.classList.add("selected");
  }

  // The address bar always names what a reload should show: the selected
  // step (?node=) or the open panel. No history entries: Back leaves the builder.
  function setUrlNode(id) {
    if (id) {
      window.history.replaceState(null, "", base + "?node=" + encodeURIComponent(id));
      return;
    }
    var url = new URL(window.location.href);
    if (!url.searchParams.has("node")) return;
    url.searchParams.delete("node");
    window.history.replaceState(null, "", url.pathname + url.search);
  }

  function select(kind, id, options) {
    options = options || {};
    selection = id ? { kind: kind, id: String(id) } : null;
    markSelection();
    var el = selectedEl();
    if (el && options.center) center(el);
    if (el && options.focus) el.focus({ preventScroll: true });
    if (selection && kind === "node") {
      setUrlNode(selection.id);
      if (options.open && window.htmx) {
        window.htmx.ajax("GET", base + "/nodes/" + encodeURIComponent(selection.id), { target: "#side-panel", swap: "innerHTML" });
      }
    } else {
      setUrlNode(null);
    }
  }

  function closePanel() {
    if (emptyPanel) sidePanel.innerHTML = emptyPanel.innerHTML;
    window.history.replaceState(null, "", base);
    if (selection && selection.kind === "node") select(null, null);
  }

  function deleteSelection() {
    if (!selection) return;
    var current = selection;
    var url = current.kind === "node"
      ? base + "/nodes/" + encodeURIComponent(current.id) + "/delete"
      : base + "/edges/" + encodeURIComponent(current.id) + "/delete";
    send("POST", url).then(function () {
      var inspector = document.getElementById("inspector");
      if (current.kind === "node" && inspector && inspector.dataset.nodeId === current.id) closePanel();
      selection = null;
      setUrlNode(null);
      say(current.kind === "node" ? "Step deleted." : "Connection deleted.");
      graphChanged();
    }).catch(function (err) { say(err.message, true); });
  }

  // -- pointer gestures on the canvas ---------------------------------------------------

  svg.addEventListener("pointerdown", function (event) {
    if (event.button !== 0) return;
    var port = event.target.closest(".port-out");
    var node = event.target.closest(".node");
    var edge = event.target.closest(".edge");
    var start = toCanvas(event.clientX, event.clientY);
    if (port && node) {
      var from = portPoint(node, port.dataset.port);
      gesture = { mode: "connect", source: node.dataset.nodeId, port: port.dataset.port, from: from };
      wire.setAttribute("d", edgePath(from.x, from.y, start.x, start.y));
      svg.classList.add("connecting");
    } else if (node) {
      gesture = { mode: "drag", el: node, start: start, origin: pos(node), moved: false };
    } else if (edge) {
      gesture = { mode: "edge", id: edge.dataset.edgeId };
    } else {
      gesture = { mode: "pan", sx: event.clientX, sy: event.clientY, vx: view.x, vy: view.y, moved: false };
    }
    svg.setPointerCapture(event.pointerId);
    event.preventDefault();
  });

  svg.addEventListener("pointermove", function (event) {
    if (!gesture) return;
    var p = toCanvas(event.clientX, event.clientY);
    if (gesture.mode === "connect") {
      wire.setAttribute("d", edgePath(gesture.from.x, gesture.from.y, p.x, p.y));
      graph.querySelectorAll(".drop-target").forEach(function (el) { el.classList.remove("drop-target"); });
      var over = document.elementFromPoint(event.clientX, event.clientY);
      var target = over && over.closest && over.closest(".node");
      if (target && target.dataset.nodeId !== gesture.source) target.classList.add("drop-target");
    } else if (gesture.mode === "drag") {
      var dx = p.x - gesture.start.x, dy = p.y - gesture.start.y;
      if (!gesture.moved && Math.abs(dx) + Math.abs(dy) < 3 / view.k) return;
      gesture.moved = true;
      gesture.el.classList.add("dragging");
      moveNode(gesture.el, gesture.origin.x + dx, gesture.origin.y + dy);
    } else if (gesture.mode === "pan") {
      var mx = event.clientX - gesture.sx, my = event.clientY - gesture.sy;
      if (Math.abs(mx) + Math.abs(my) > 3) gesture.moved = true;
      view.x = gesture.vx + mx;
      view.y = gesture.vy + my;
      applyView();
    }
  });

  function endGesture(event) {
    var g = gesture;
    gesture = null;
    if (!g) return;
    if (g.mode === "connect") {
      wire.setAttribute("d", "");
      svg.classList.remove("connecting");
      graph.querySelectorAll(".drop-target").forEach(function (el) { el.classList.remove("drop-target"); });
      var over = event && document.elementFromPoint(event.clientX, event.clientY);
      var target = over && over.closest && over.closest(".node");
      if (!target || target.dataset.nodeId === g.source) {
        if (event && event.type === "pointerup") say("Drop the connection on another step.");
        return;
      }
      send("POST", base + "/edges", { source: g.source, port: g.port, target: target.dataset.nodeId })
        .then(function () { say("Connected."); graphChanged(); })
        .catch(function (err) { say(err.message, true); });
    } else if (g.mode === "drag") {
      g.el.classList.remove("dragging");
      if (!g.moved) {
        // pointerdown's preventDefault kept focus where it was: move it here,
        // so Delete and the arrow keys act on this step.
        select("node", g.el.dataset.nodeId, { open: true, focus: true });
        return;
      }
      var x = snap(pos(g.el).x), y = snap(pos(g.el).y);
      moveNode(g.el, x, y);
      send("POST", base + "/nodes/" + encodeURIComponent(g.el.dataset.nodeId) + "/position", { x: x, y: y })
        .catch(function (err) { say(err.message, true); refresh(); });
    } else if (g.mode === "edge") {
      select("edge", g.id);
      var el = selectedEl();
      if (el) el.focus({ preventScroll: true });
    } else if (g.mode === "pan") {
      if (g.moved) saveView(); else if (selection) select(null, null);
    }
  }

  svg.addEventListener("pointerup", endGesture);
  svg.addEventListener("pointercancel", function () {
    if (gesture && gesture.mode === "connect") { wire.setAttribute("d", ""); svg.classList.remove("connecting"); }
    gesture = null;
  });

  svg.addEventListener("wheel", function (event) {
    event.preventDefault();
    var r = svg.getBoundingClientRect();
    zoomAt(Math.exp(-event.deltaY * 0.0015), event.clientX - r.left, event.clientY - r.top);
  }, { passive: false });

  document.querySelectorAll("[data-zoom]").forEach(function (button) {
    button.addEventListener("click", function () {
      var r = svg.getBoundingClientRect();
      var how = button.dataset.zoom;
      if (how === "fit") fit();
      else zoomAt(how === "in" ? 1.2 : 1 / 1.2, r.width / 2, r.height / 2);
    });
  });

  // -- palette: drag a step type onto the canvas, or click to add ------------------

  var palette = document.querySelector(".palette");
  var paletteDrag = null;

  function addNode(type, x, y) {
    send("POST", base + "/nodes", { node_type: type, x: snap(x), y: snap(y) })
      .then(function (data) {
        pendingSelect = data.node_id;
        say("Step added.");
        graphChanged();
      })
      .catch(function (err) { say(err.message, true); });
  }

  palette.addEventListener("pointerdown", function (event) {
    var item = event.target.closest(".palette-item");
    if (!item || event.button !== 0) return;
    paletteDrag = { item: item, type: item.dataset.nodeType, sx: event.clientX, sy: event.clientY, ghost: null };
    item.setPointerCapture(event.pointerId);
  });

  palette.addEventListener("pointermove", function (event) {
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

  palette.addEventListener("pointerup", function (event) {
    var d = paletteDrag;
    paletteDrag = null;
    if (!d || !d.ghost) return;
    d.ghost.remove();
    // The click that follows this pointerup must not add a second step.
    d.item.dataset.dragged = "1";
    window.setTimeout(function () { delete d.item.dataset.dragged; }, 0);
    var r = svg.getBoundingClientRect();
    if (event.clientX < r.left || event.clientX > r.right || event.clientY < r.top || event.clientY > r.bottom) {
      say("Drop the step on the canvas to add it.");
      return;
    }
    var p = toCanvas(event.clientX, event.clientY);
    addNode(d.type, p.x - W / 2, p.y - H / 2);
  });

  palette.addEventListener("click", function (event) {
    var item = event.target.closest(".palette-item");
    if (!item) return;
    event.preventDefault();
    if (item.dataset.dragged) { delete item.dataset.dragged; return; }
    // Click or keyboard: below the lowest step, in view.
    var lowest = null;
    graph.querySelectorAll(".node").forEach(function (el) {
      var p = pos(el);
      if (!lowest || p.y > lowest.y) lowest = p;
    });
    var r = svg.getBoundingClientRect();
    var at = lowest ? { x: lowest.x, y: lowest.y + H + 56 } : toCanvas(r.left + r.width / 2 - W / 2, r.top + 60);
    addNode(item.dataset.nodeType, at.x, at.y);
  });

  // -- keyboard ---------------------------------------------------------------------------

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  document.addEventListener("keydown", function (event) {
    if (typing(document.activeElement)) return;
    var focused = document.activeElement;
    var focusedNode = focused && focused.closest && focused.closest("#graph .node");
    var focusedEdge = focused && focused.closest && focused.closest("#graph .edge");
    if ((event.key === "Enter" || event.key === " ") && (focusedNode || focusedEdge)) {
      event.preventDefault();
      if (focusedNode) select("node", focusedNode.dataset.nodeId, { open: true });
      else select("edge", focusedEdge.dataset.edgeId);
    } else if (event.key === "Delete" || event.key === "Backspace") {
      // Only from the canvas: Backspace on a focused panel button must not delete a step.
      var onCanvas = !focused || focused === document.body || svg.contains(focused);
      if (!onCanvas) return;
      if (focusedNode && (!selection || selection.id !== focusedNode.dataset.nodeId)) select("node", focusedNode.dataset.nodeId);
      if (focusedEdge) select("edge", focusedEdge.dataset.edgeId);
      if (selection) { event.preventDefault(); deleteSelection(); }
    } else if (event.key === "Escape") {
      select(null, null);
    } else if (/^Arrow/.test(event.key) && focusedNode) {
      event.preventDefault();
      var step = event.shiftKey ? 48 : GRID * 2;
      var p = pos(focusedNode);
      var dx = { ArrowLeft: -step, ArrowRight: step }[event.key] || 0;
      var dy = { ArrowUp: -step, ArrowDown: step }[event.key] || 0;
      moveNode(focusedNode, p.x + dx, p.y + dy);
      var id = focusedNode.dataset.nodeId;
      window.clearTimeout(focusedNode.saveTimer);
      focusedNode.saveTimer = window.setTimeout(function () {
        var el = nodeEl(id);
        if (el) send("POST", base + "/nodes/" + encodeURIComponent(id) + "/position", pos(el)).catch(function (err) { say(err.message, true); });
      }, 400);
    }
  });

  // -- links and buttons in panels ------------------------------------------------------------

  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-select-node]");
    if (link) {
      var id = link.getAttribute("data-select-node");
      if (nodeEl(id)) {
        event.preventDefault();
        select("node", id, { open: true, center: true, focus: true });
      }
      return;
    }
    var del = event.target.closest("[data-delete-node]");
    if (del) {
      event.preventDefault();
      if (!window.confirm("Delete this step and its connections?")) return;
      selection = { kind: "node", id: del.getAttribute("data-delete-node") };
      deleteSelection();
      return;
    }
    if (event.target.closest("[data-close-panel]")) {
      event.preventDefault();
      closePanel();
    }
  });

  // -- HTMX integration -------------------------------------------------------------------------

  document.body.addEventListener("graph-changed", refresh);

  // Rejected forms come back as 422 with the form and its errors: show them.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var code = event.detail.xhr.status;
    if (code === 422 || code === 409) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  document.body.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target) return;
    if (target.id === "side-panel") {
      var inspector = document.getElementById("inspector");
      if (inspector) {
        selection = { kind: "node", id: inspector.dataset.nodeId };
        setUrlNode(selection.id);
        markSelection();
      }
      var config = event.detail.requestConfig;
      var path = event.detail.pathInfo && event.detail.pathInfo.requestPath;
      if (!inspector && config && config.verb === "get" && path && /\/(triggers|settings|test-run)(\?|$)/.test(path)) {
        window.history.replaceState(null, "", path);
      }
      var result = sidePanel.querySelector("[data-test-path]");
      testPath = result ? (readJSON(result.getAttribute("data-test-path")) || []) : testPath;
      if (result) paintPath();
    } else if (target.id === "live-counts") {
      liveCounts = {};
      target.querySelectorAll("[data-node]").forEach(function (li) {
        liveCounts[li.dataset.node] = { waiting: li.dataset.waiting, visits: li.dataset.visits };
      });
      paintLive();
    }
  });

  document.body.addEventListener("htmx:responseError", function (event) {
    say("The server refused that (" + event.detail.xhr.status + ").", true);
  });

  function plural(count, word) {
    return count + " " + word + (String(count) === "1" ? "" : "s");
  }

  function paintLive() {
    graph.querySelectorAll("[data-live-for]").forEach(function (text) {
      var c = liveCounts && liveCounts[text.getAttribute("data-live-for")];
      text.textContent = c ? "⏳ " + c.waiting + " waiting · " + plural(c.visits, "visit") : "";
    });
  }

  function paintOverlay() {
    svg.classList.toggle("overlay-on", !!overlayData);
    graph.querySelectorAll("[data-overlay-for]").forEach(function (text) {
      var n = overlayData && overlayData.nodes[text.getAttribute("data-overlay-for")];
      text.textContent = n ? "👣 " + plural(n.visits, "visit") + " · ↘ " + n.dropOff + " stopped" : "";
    });
    graph.querySelectorAll(".edge").forEach(function (edge) {
      var label = edge.querySelector(".edge-count");
      var count = overlayData && overlayData.edges[edge.dataset.source + "\u0000" + edge.dataset.target];
      if (label) label.textContent = overlayData ? String(count || 0) : "";
    });
  }

  function paintPath() {
    graph.querySelectorAll(".on-path").forEach(function (el) { el.classList.remove("on-path"); });
    var pairs = {};
    testPath.forEach(function (id, i) {
      var el = nodeEl(id);
      if (el) el.classList.add("on-path");
      if (i > 0) pairs[testPath[i - 1] + "\u0000" + id] = true;
    });
    graph.querySelectorAll(".edge").forEach(function (edge) {
      if (pairs[edge.dataset.source + "\u0000" + edge.dataset.target]) edge.classList.add("on-path");
    });
  }

  var overlayToggle = document.getElementById("overlay-toggle");
  if (overlayToggle) {
    overlayToggle.addEventListener("change", function () {
      if (!overlayToggle.checked) { overlayData = null; paintOverlay(); return; }
      fetch(overlayToggle.dataset.overlayUrl, { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(new Error("Analytics are not available.")); })
        .then(function (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html;
          overlayData = { nodes: {}, edges: {} };
          holder.querySelectorAll("[data-node]").forEach(function (el) {
            overlayData.nodes[el.dataset.node] = { visits: el.dataset.visits, dropOff: el.dataset.dropOff };
          });
          holder.querySelectorAll("[data-transitions]").forEach(function (el) {
            overlayData.edges[el.dataset.source + "\u0000" + el.dataset.target] = el.dataset.transitions;
          });
          paintOverlay();
        })
        .catch(function (err) { overlayToggle.checked = false; say(err.message, true); });
    });
  }

  // -- start ----------------------------------------------------------------------------------------

  applyView();
  if (!hadView) fit(true);
  var initial = root.dataset.selected;
  if (initial && nodeEl(initial)) {
    // The server already rendered this node's inspector (?node=...).
    select("node", initial, { center: true, focus: true });
  }
})();
