// Draws the dashboard's Plotly figures. Each chart element names the
// <script type="application/json"> block holding its figure (the CSP
// forbids inline scripts, so the figures travel as data).
(function () {
  "use strict";
  function draw(root) {
    if (!window.Plotly) { return; }
    root.querySelectorAll("[data-plotly]").forEach(function (el) {
      var block = document.getElementById(el.getAttribute("data-plotly"));
      if (!block) { return; }
      var figure = JSON.parse(block.textContent);
      window.Plotly.newPlot(el, figure.data, figure.layout, { responsive: true, displaylogo: false });
      el.setAttribute("data-drawn", "true");
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSwap", function (event) { draw(event.target); });
})();
