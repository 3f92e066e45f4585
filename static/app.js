// Small behaviours shared by every page. No framework: htmx does the rest.
(function () {
  "use strict";
  // Confirm dangerous actions: <button data-confirm="Delete this workflow?">
  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-confirm]");
    if (target && !window.confirm(target.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);
})();
