// The side panel (inspector, triggers, settings, test run) and what the
// canvas paints from it: live counts, the analytics overlay, a test run's
// path. Unsaved changes in a panel form are never lost silently: leaving
// the form asks to save, discard or keep editing.
import { dom, state, say, nodeEl, readJSON, url } from "./core.js";
import { markSelection, setUrlNode, selectNodes, selectTrigger } from "./selection.js";

// -- unsaved changes ---------------------------------------------------------------

var lastAction = null;

function dirtyForm() {
  return dom.sidePanel.querySelector('form[data-guard][data-dirty="1"]');
}

export function isDirty() { return !!dirtyForm(); }

function showSaveState() {
  dom.sidePanel.querySelectorAll("[data-save-state]").forEach(function (el) {
    var form = el.closest("form");
    var dirty = !!(form && form.dataset.dirty === "1");
    el.textContent = dirty ? "Unsaved changes" : "All changes saved";
    el.classList.toggle("dirty", dirty);
  });
}

export function discardChanges() {
  dom.sidePanel.querySelectorAll("form[data-dirty]").forEach(function (form) { delete form.dataset.dirty; });
  showSaveState();
}

function ignoredField(el) {
  return !el.name || el.name === "preview_contact" || el.name === "csrf_token" || el.type === "search";
}

function touched(event) {
  var form = event.target.closest && event.target.closest("form[data-guard]");
  if (!form || ignoredField(event.target)) return;
  form.dataset.dirty = "1";
  showSaveState();
}
dom.sidePanel.addEventListener("input", touched);
dom.sidePanel.addEventListener("change", touched);
dom.sidePanel.addEventListener("submit", function (event) {
  lastAction = event.submitter ? event.submitter.value || "save" : "save";
}, true);

window.addEventListener("beforeunload", function (event) {
  if (isDirty()) { event.preventDefault(); event.returnValue = ""; }
});

var dialog = document.getElementById("unsaved-dialog");

// Resolves true when it is fine to replace the panel now.
export function guard() {
  var form = dirtyForm();
  if (!form) return Promise.resolve(true);
  var heading = dom.sidePanel.querySelector(".panel-head h2");
  document.getElementById("unsaved-text").textContent =
    (heading ? "“" + heading.textContent.trim() + "”" : "This panel") + " has changes that are not saved yet.";
  return new Promise(function (resolve) {
    dialog.returnValue = "";
    dialog.showModal();
    dialog.addEventListener("close", function onClose() {
      dialog.removeEventListener("close", onClose);
      var choice = dialog.returnValue;
      if (choice === "discard") { discardChanges(); resolve(true); return; }
      if (choice !== "save") { resolve(false); return; }
      document.body.addEventListener("htmx:afterSwap", function once(event) {
        if (event.detail.target !== dom.sidePanel) return;
        document.body.removeEventListener("htmx:afterSwap", once);
        var ok = event.detail.xhr && event.detail.xhr.status < 400;
        if (!ok) say("Not saved: fix the fields shown.", { error: true });
        resolve(ok);
      });
      var save = form.querySelector('button[type="submit"][value="save"]:not(.visually-hidden)') ||
        form.querySelector('button[type="submit"]');
      form.requestSubmit(save || undefined);
    });
  });
}

// -- opening panels ------------------------------------------------------------------

function load(path) {
  return window.htmx.ajax("GET", path, { target: "#side-panel", swap: "innerHTML" });
}

export function openNode(id) {
  return guard().then(function (ok) {
    if (!ok) return false;
    var inspector = document.getElementById("inspector");
    if (inspector && inspector.dataset.nodeId === id) return true;
    load(url("/nodes/" + encodeURIComponent(id)));
    return true;
  });
}

export function openTriggers(id) {
  return guard().then(function (ok) {
    if (!ok) return false;
    selectTrigger(id);
    load(url("/triggers" + (id ? "?open=" + encodeURIComponent(id) : "")));
    return true;
  });
}

export function closePanel() {
  return guard().then(function (ok) {
    if (!ok) return false;
    if (dom.emptyPanel) dom.sidePanel.innerHTML = dom.emptyPanel.innerHTML;
    window.history.replaceState(null, "", state.base);
    return true;
  });
}

// After an undo or a redo, the open inspector shows the step as it is now.
export function reloadInspector() {
  var inspector = document.getElementById("inspector");
  if (!inspector) {
    // Undo and redo also take back trigger and settings edits: an open
    // Triggers or Settings panel shows the workflow as it now is.
    var panel = dom.sidePanel && dom.sidePanel.querySelector("[data-panel-reload]");
    if (panel) { discardChanges(); load(panel.dataset.panelReload); }
    return;
  }
  var id = inspector.dataset.nodeId;
  discardChanges();
  if (nodeEl(id)) load(url("/nodes/" + encodeURIComponent(id)));
  else if (dom.emptyPanel) dom.sidePanel.innerHTML = dom.emptyPanel.innerHTML;
}

// -- HTMX integration -----------------------------------------------------------------

// Panel links (Triggers, Settings, Test run) ask before replacing unsaved work.
document.body.addEventListener("htmx:confirm", function (event) {
  var target = event.detail.target;
  if (target !== dom.sidePanel || event.detail.verb !== "get" || !isDirty()) return;
  if (event.detail.elt && event.detail.elt.closest && event.detail.elt.closest("#side-panel")) return;
  event.preventDefault();
  guard().then(function (ok) { if (ok) event.detail.issueRequest(true); });
});

document.body.addEventListener("htmx:afterSwap", function (event) {
  var target = event.detail.target;
  if (!target) return;
  if (target.id === "side-panel") {
    var status = event.detail.xhr ? event.detail.xhr.status : 200;
    if (status === 422 || status === 409 || (lastAction && lastAction !== "save")) {
      // Still not saved: what was typed is on the form again.
      var errors = dom.sidePanel.querySelector(".form-error, .field-error");
      var form = (errors && errors.closest("form[data-guard]")) || dom.sidePanel.querySelector("form[data-guard]");
      if (form) form.dataset.dirty = "1";
    }
    lastAction = null;
    showSaveState();
    var inspector = document.getElementById("inspector");
    if (inspector) {
      // (Shift+click may have added steps while the inspector loaded: keep them.)
      if (!state.selection.nodes.has(inspector.dataset.nodeId)) {
        selectNodes([inspector.dataset.nodeId]);
      } else {
        if (state.selection.nodes.size === 1) setUrlNode(inspector.dataset.nodeId);
        markSelection();
      }
    }
    var config = event.detail.requestConfig;
    var path = event.detail.pathInfo && event.detail.pathInfo.requestPath;
    if (!inspector && config && config.verb === "get" && path && /\/(triggers|settings|test-run)(\?|$)/.test(path)) {
      window.history.replaceState(null, "", path.replace(/\?open=\d+$/, ""));
    }
    var opened = path && /[?&]open=(\d+)/.exec(path);
    if (opened) {
      var card = document.getElementById("trigger-" + opened[1]);
      if (card) { card.classList.add("opened"); card.scrollIntoView({ block: "nearest" }); }
    }
    var result = dom.sidePanel.querySelector("[data-test-path]");
    state.testPath = result ? (readJSON(result.getAttribute("data-test-path")) || []) : state.testPath;
    if (result) paintPath();
  } else if (target.id === "live-counts") {
    state.liveCounts = {};
    target.querySelectorAll("[data-node]").forEach(function (li) {
      state.liveCounts[li.dataset.node] = {
        waiting: li.dataset.waiting, visits: li.dataset.visits, held: li.dataset.heldText || ""
      };
    });
    paintLive();
  }
});

// The forecast panel swaps itself while its job runs (outerHTML): read it
// after every settle, whichever element was swapped.
document.body.addEventListener("htmx:afterSettle", function () { readForecast(); });

document.body.addEventListener("htmx:responseError", function (event) {
  say("The server refused that (" + event.detail.xhr.status + ").", { error: true });
});

// -- painting -------------------------------------------------------------------------

function plural(count, word) {
  return count + " " + word + (String(count) === "1" ? "" : "s");
}

// A card's counts are visible text, and axe wants the visible text in the
// card's name: they are appended to the name the server wrote (data-name).
function nameWithStats(text) {
  var node = text.closest(".node");
  if (!node) return;
  if (!node.hasAttribute("data-name")) node.setAttribute("data-name", node.getAttribute("aria-label") || "");
  var stats = Array.prototype.map.call(node.querySelectorAll(".stat"), function (s) { return s.textContent; })
    .filter(Boolean);
  node.setAttribute("aria-label", [node.getAttribute("data-name")].concat(stats).join(" "));
}

export function paintLive() {
  dom.graph.querySelectorAll("[data-live-for]").forEach(function (text) {
    var c = state.liveCounts && state.liveCounts[text.getAttribute("data-live-for")];
    text.textContent = c ? c.waiting + " waiting · " + plural(c.visits, "visit") + (c.held ? " · " + c.held : "") : "";
    nameWithStats(text);
  });
}

export function paintOverlay() {
  var data = state.overlayData;
  dom.svg.classList.toggle("overlay-on", !!data);
  dom.graph.querySelectorAll("[data-overlay-for]").forEach(function (text) {
    var n = data && data.nodes[text.getAttribute("data-overlay-for")];
    text.textContent = n
      ? plural(n.visits, "visit") + ", " + n.ended + " ended here" + (Number(n.dropped) ? ", " + n.dropped + " dropped" : "")
      : "";
    nameWithStats(text);
  });
  dom.graph.querySelectorAll(".edge").forEach(function (edge) {
    var label = edge.querySelector(".edge-count");
    var count = data && data.edges[edge.dataset.source + "\u0000" + edge.dataset.target];
    if (label) label.textContent = data ? String(count || 0) : "";
  });
}

export function paintPath() {
  dom.graph.querySelectorAll(".on-path").forEach(function (el) { el.classList.remove("on-path"); });
  var pairs = {};
  state.testPath.forEach(function (id, i) {
    var el = nodeEl(id);
    if (el) el.classList.add("on-path");
    if (i > 0) pairs[state.testPath[i - 1] + "\u0000" + id] = true;
  });
  dom.graph.querySelectorAll(".edge").forEach(function (edge) {
    if (pairs[edge.dataset.source + "\u0000" + edge.dataset.target]) edge.classList.add("on-path");
  });
}

// A finished forecast in the side panel (builder/_forecast_result.html):
// its per-step counts become badges on the cards; its chart is drawn with
// plotly.js, loaded the first time a forecast shows one.
function readForecast() {
  var holder = dom.sidePanel.querySelector("[data-forecast-badges]");
  if (holder) {
    state.forecast = readJSON(holder.getAttribute("data-forecast-badges")) || {};
    paintForecast();
  }
  var chart = dom.sidePanel.querySelector("[data-plotly]:not([data-drawn])");
  if (chart) drawChart(chart);
}

var plotlyLoading = null;
function drawChart(el) {
  if (!window.Plotly) {
    if (!plotlyLoading) {
      plotlyLoading = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = el.getAttribute("data-plotly-src");
        script.onload = resolve;
        script.onerror = reject;
        document.head.appendChild(script);
      });
    }
    plotlyLoading.then(function () { drawChart(el); }, function () { say("The chart could not be loaded.", { error: true }); });
    return;
  }
  var block = document.getElementById(el.getAttribute("data-plotly"));
  if (!block) return;
  var figure = JSON.parse(block.textContent);
  window.Plotly.newPlot(el, figure.data, figure.layout, { responsive: true, displaylogo: false });
  el.setAttribute("data-drawn", "true");
}

export function paintForecast() {
  var data = state.forecast;
  dom.graph.querySelectorAll("[data-forecast-for]").forEach(function (text) {
    var n = data && data[text.getAttribute("data-forecast-for")];
    text.textContent = n ? "forecast: " + n.entered + " entered" + (Number(n.held) ? ", " + n.held + " held" : "") : "";
    nameWithStats(text);
  });
}

export function paintAll() { paintLive(); paintOverlay(); paintPath(); paintForecast(); }

var overlayToggle = document.getElementById("overlay-toggle");
if (overlayToggle) {
  overlayToggle.addEventListener("change", function () {
    if (!overlayToggle.checked) { state.overlayData = null; paintOverlay(); return; }
    fetch(overlayToggle.dataset.overlayUrl, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(new Error("Analytics are not available.")); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var data = { nodes: {}, edges: {} };
        holder.querySelectorAll("[data-node]").forEach(function (el) {
          data.nodes[el.dataset.node] = { visits: el.dataset.visits, ended: el.dataset.ended, dropped: el.dataset.dropped };
        });
        holder.querySelectorAll("[data-transitions]").forEach(function (el) {
          data.edges[el.dataset.source + "\u0000" + el.dataset.target] = el.dataset.transitions;
        });
        state.overlayData = data;
        paintOverlay();
      })
      .catch(function (err) { overlayToggle.checked = false; say(err.message, { error: true }); });
  });
}
readForecast();
