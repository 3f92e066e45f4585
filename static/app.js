// Small behaviours shared by every page. No framework: htmx does the rest.
// Loaded with `defer` after htmx; no inline scripts anywhere (the CSP forbids them).
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

  // A "select all" checkbox: <input type="checkbox" data-check-all="ids">
  // toggles every enabled checkbox named "ids" in the same form.
  document.addEventListener("change", function (event) {
    var all = event.target.closest("[data-check-all]");
    if (!all) { return; }
    var scope = all.form || document;
    var name = all.getAttribute("data-check-all");
    scope.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (box) {
      if (!box.disabled) { box.checked = all.checked; }
    });
  });

  // Copy buttons: <button data-copy="#element-id">
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) { return; }
    navigator.clipboard.writeText(source.value !== undefined ? source.value : source.textContent).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      window.setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  function configureHtmx() {
    if (!window.htmx) { return; }
    // Validation errors (400/409/422) come back as HTML to show in place,
    // like a form re-rendered with its errors; other errors are reported.
    window.htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[23]..", swap: true },
      { code: "(400|409|422)", swap: true, error: false },
      { code: "[45]..", swap: false, error: true },
    ];
    document.body.addEventListener("htmx:responseError", function (event) {
      var status = event.detail.xhr ? event.detail.xhr.status : 0;
      var text = status === 403 ? "You are not allowed to do that."
        : status === 404 ? "That item no longer exists. Reload the page."
        : "Something went wrong (" + status + "). Please try again.";
      showFlash(text);
    });
    document.body.addEventListener("htmx:sendError", function () {
      showFlash("The server cannot be reached. Check your connection and try again.");
    });
  }

  function showFlash(text) {
    var main = document.getElementById("main");
    if (!main) { return; }
    var box = document.createElement("div");
    box.className = "flash flash-error";
    box.setAttribute("role", "alert");
    box.textContent = text;
    main.insertBefore(box, main.firstChild);
  }

  // A table or code block wider than its box scrolls inside it; keyboard
  // users reach that scroll by focusing the box (tabindex="0").
  var SCROLLERS = ".table-wrap, .table, .diff-canvas, pre";
  function focusableScrollers() {
    document.querySelectorAll(SCROLLERS).forEach(function (el) {
      var style = window.getComputedStyle(el);
      var scrollsX = el.scrollWidth > el.clientWidth + 1 && style.overflowX !== "visible";
      var scrollsY = el.scrollHeight > el.clientHeight + 1 && style.overflowY !== "visible";
      if ((scrollsX || scrollsY) && !el.hasAttribute("tabindex")) {
        el.setAttribute("tabindex", "0");
      }
    });
  }
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(focusableScrollers, 200);
  });
  document.addEventListener("htmx:afterSettle", focusableScrollers);

  function ready() {
    configureHtmx();
    focusableScrollers();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
  // Upload progress for large files: <form hx-post hx-encoding="multipart/form-data"
  // data-upload-progress="#bar"> fills <progress id="bar"> as the file goes up.
  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = event.target.closest("[data-upload-progress]");
    if (!form || !event.detail.lengthComputable) { return; }
    var bar = document.querySelector(form.getAttribute("data-upload-progress"));
    if (!bar) { return; }
    bar.hidden = false;
    bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
    bar.textContent = bar.value + "%";
  });
})();
