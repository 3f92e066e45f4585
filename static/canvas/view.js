// Pan, zoom, fit, the minimap, and keeping new steps in view and clear of
// the minimap (the one panel that floats over the canvas).
import { dom, state, send, url, allNodes, pos, W, H, TW, TH, MIN_K, MAX_K } from "./core.js";

var PAD = 24;

export function applyView() {
  var v = state.view;
  dom.viewport.setAttribute("transform", "translate(" + v.x + "," + v.y + ") scale(" + v.k + ")");
  var label = document.getElementById("zoom-level");
  if (label) {
    label.textContent = Math.round(v.k * 100) + "%";
    label.parentNode.setAttribute("aria-label", "Zoom " + label.textContent + ", reset to 100%");
  }
  drawMinimap();
}

export function saveView() {
  if (state.readOnly) return; // a phone's view must not move the desktop's
  window.clearTimeout(saveView.timer);
  saveView.timer = window.setTimeout(function () {
    send("POST", url("/viewport"), state.view).catch(function () {});
  }, 600);
}

export function zoomAt(factor, cx, cy) {
  var v = state.view;
  var k = Math.min(MAX_K, Math.max(MIN_K, v.k * factor));
  v.x = cx - (cx - v.x) * (k / v.k);
  v.y = cy - (cy - v.y) * (k / v.k);
  v.k = k;
  applyView();
  saveView();
}

export function zoomTo(k) {
  var r = dom.svg.getBoundingClientRect();
  zoomAt(k / state.view.k, r.width / 2, r.height / 2);
}

export function toCanvas(clientX, clientY) {
  var r = dom.svg.getBoundingClientRect(), v = state.view;
  return { x: (clientX - r.left - v.x) / v.k, y: (clientY - r.top - v.y) / v.k };
}

// The part of the canvas (screen px, relative to the svg) nothing floats over.
export function safeRect() {
  var r = dom.svg.getBoundingClientRect();
  var safe = { left: PAD, top: PAD + 8, right: r.width - PAD, bottom: r.height - PAD };
  if (dom.minimap && dom.minimap.offsetParent !== null) {
    var m = dom.minimap.getBoundingClientRect();
    // The minimap holds the bottom-right corner: keep clear of its height.
    safe.bottom = Math.min(safe.bottom, m.top - r.top - 12);
  }
  if (safe.bottom - safe.top < H * state.view.k + 20) safe.bottom = r.height - PAD;
  return safe;
}

export function contentBounds(extra) {
  var box = { minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity };
  allNodes().forEach(function (el) {
    var p = pos(el);
    box.minX = Math.min(box.minX, p.x); box.minY = Math.min(box.minY, p.y);
    box.maxX = Math.max(box.maxX, p.x + W); box.maxY = Math.max(box.maxY, p.y + H + 24);
  });
  dom.graph.querySelectorAll(".trigger").forEach(function (el) {
    var m = /translate\(([-\d.e]+),([-\d.e]+)\)/.exec(el.getAttribute("transform") || "");
    if (!m) return;
    var x = parseFloat(m[1]), y = parseFloat(m[2]);
    box.minX = Math.min(box.minX, x); box.minY = Math.min(box.minY, y);
    box.maxX = Math.max(box.maxX, x + TW); box.maxY = Math.max(box.maxY, y + TH);
  });
  return isFinite(box.minX) ? box : null;
}

export function fit(keep) {
  var box = contentBounds();
  if (!box) { state.view = { x: 40, y: 40, k: 1 }; applyView(); return; }
  var s = safeRect();
  var k = Math.min(1.1, (s.right - s.left) / (box.maxX - box.minX), (s.bottom - s.top) / (box.maxY - box.minY));
  k = Math.min(MAX_K, Math.max(MIN_K, k));
  state.view = {
    k: k,
    x: s.left + ((s.right - s.left) - (box.maxX - box.minX) * k) / 2 - box.minX * k,
    y: s.top + ((s.bottom - s.top) - (box.maxY - box.minY) * k) / 2 - box.minY * k
  };
  applyView();
  if (!keep) saveView();
}

// Pan as little as needed so that a box (canvas units) lies in the safe rect.
export function reveal(box) {
  var v = state.view, s = safeRect();
  var left = box.x * v.k + v.x, top = box.y * v.k + v.y;
  var right = (box.x + box.w) * v.k + v.x, bottom = (box.y + box.h) * v.k + v.y;
  var dx = 0, dy = 0;
  if (right - left > s.right - s.left) dx = s.left - left;
  else if (left < s.left) dx = s.left - left;
  else if (right > s.right) dx = s.right - right;
  if (bottom - top > s.bottom - s.top) dy = s.top - top;
  else if (top < s.top) dy = s.top - top;
  else if (bottom > s.bottom) dy = s.bottom - bottom;
  if (!dx && !dy) return;
  v.x += dx; v.y += dy;
  applyView();
  saveView();
}

export function revealNodes(ids) {
  var box = null;
  ids.forEach(function (id) {
    var el = dom.graph.querySelector('.node[data-node-id="' + CSS.escape(id) + '"]');
    if (!el) return;
    var p = pos(el);
    box = box ? {
      x: Math.min(box.x, p.x), y: Math.min(box.y, p.y),
      w: Math.max(box.x + box.w, p.x + W) - Math.min(box.x, p.x),
      h: Math.max(box.y + box.h, p.y + H) - Math.min(box.y, p.y)
    } : { x: p.x, y: p.y, w: W, h: H };
  });
  if (box) reveal(box);
}

// A top-left corner for a new step: the point asked for, pulled into the
// safe rect, then moved down past any step already there.
export function placeInView(x, y) {
  var v = state.view, s = safeRect();
  var minX = (s.left - v.x) / v.k, maxX = (s.right - v.x) / v.k - W;
  var minY = (s.top - v.y) / v.k, maxY = (s.bottom - v.y) / v.k - H;
  x = Math.max(minX, Math.min(maxX, x));
  y = Math.max(minY, Math.min(maxY, y));
  var nodes = allNodes().map(pos);
  for (var i = 0; i < 40; i++) {
    var hit = nodes.some(function (p) { return Math.abs(p.x - x) < W + 16 && Math.abs(p.y - y) < H + 24; });
    if (!hit) break;
    y += H + 32;
    if (y > maxY) { y = minY; x += W + 40; }
  }
  return { x: Math.min(x, Math.max(minX, maxX)), y: y };
}

// -- minimap --------------------------------------------------------------------

var mm = { scale: 1, ox: 0, oy: 0 };

export function drawMinimap() {
  var holder = document.getElementById("minimap-svg");
  if (!holder || !dom.minimap || dom.minimap.offsetParent === null) return;
  var box = contentBounds();
  var r = dom.svg.getBoundingClientRect(), v = state.view;
  var view = { x: -v.x / v.k, y: -v.y / v.k, w: r.width / v.k, h: r.height / v.k };
  var minX = Math.min(box ? box.minX : view.x, view.x), minY = Math.min(box ? box.minY : view.y, view.y);
  var maxX = Math.max(box ? box.maxX : view.x + view.w, view.x + view.w);
  var maxY = Math.max(box ? box.maxY : view.y + view.h, view.y + view.h);
  var mw = dom.minimap.clientWidth, mh = dom.minimap.clientHeight, pad = 6;
  mm.scale = Math.min((mw - 2 * pad) / (maxX - minX || 1), (mh - 2 * pad) / (maxY - minY || 1));
  mm.ox = pad - minX * mm.scale + ((mw - 2 * pad) - (maxX - minX) * mm.scale) / 2;
  mm.oy = pad - minY * mm.scale + ((mh - 2 * pad) - (maxY - minY) * mm.scale) / 2;
  var parts = [];
  function rect(x, y, w, h, cls) {
    parts.push('<rect class="' + cls + '" x="' + (x * mm.scale + mm.ox).toFixed(1) + '" y="' + (y * mm.scale + mm.oy).toFixed(1) +
      '" width="' + Math.max(2, w * mm.scale).toFixed(1) + '" height="' + Math.max(2, h * mm.scale).toFixed(1) + '" rx="2"></rect>');
  }
  allNodes().forEach(function (el) {
    var p = pos(el);
    rect(p.x, p.y, W, H, "mm-node" + (state.selection.nodes.has(el.dataset.nodeId) ? " selected" : ""));
  });
  dom.graph.querySelectorAll(".trigger").forEach(function (el) {
    var m = /translate\(([-\d.e]+),([-\d.e]+)\)/.exec(el.getAttribute("transform") || "");
    if (m) rect(parseFloat(m[1]), parseFloat(m[2]), TW, TH, "mm-trigger");
  });
  rect(view.x, view.y, view.w, view.h, "mm-view");
  holder.innerHTML = parts.join("");
}

export function minimapPan(clientX, clientY) {
  var m = dom.minimap.getBoundingClientRect(), r = dom.svg.getBoundingClientRect(), v = state.view;
  var cx = (clientX - m.left - mm.ox) / mm.scale, cy = (clientY - m.top - mm.oy) / mm.scale;
  v.x = r.width / 2 - cx * v.k;
  v.y = r.height / 2 - cy * v.k;
  applyView();
}
