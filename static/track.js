/*
 * Site tracking snippet. On the tracked site:
 *   <script src="https://<app>/t/track.js" data-firm="<public firm key>" async></script>
 * Sends a page view to POST /t/v on load and on in-page navigation
 * (history.pushState / popstate). A browser that submitted one of the
 * firm's forms or clicked a tracked e-mail link carries the app's "atv"
 * cookie, which ties the visit to the contact; other visitors are counted
 * under a random id kept in this site's localStorage.
 * Custom activity: window.automationTrack("watched_demo").
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) return;
  var firm = script.getAttribute("data-firm");
  if (!firm) return;
  var endpoint = new URL("/t/v", script.src).toString();

  function visitorId() {
    try {
      var id = window.localStorage.getItem("atv_id");
      if (!id) {
        var bytes = new Uint8Array(16);
        window.crypto.getRandomValues(bytes);
        id = Array.prototype.map.call(bytes, function (b) {
          return ("0" + b.toString(16)).slice(-2);
        }).join("");
        window.localStorage.setItem("atv_id", id);
      }
      return id;
    } catch (e) {
      return "";
    }
  }

  function send(kind) {
    var body = JSON.stringify({
      firm: firm,
      kind: kind,
      url: window.location.href,
      referrer: document.referrer || "",
      visitor: visitorId()
    });
    // text/plain keeps the request "simple": no CORS preflight.
    if (navigator.sendBeacon &&
        navigator.sendBeacon(endpoint, new Blob([body], { type: "text/plain" }))) {
      return;
    }
    if (window.fetch) {
      window.fetch(endpoint, {
        method: "POST", body: body, credentials: "include", keepalive: true, mode: "cors",
        headers: { "Content-Type": "text/plain" }
      }).catch(function () {});
    }
  }

  var lastUrl = null;
  function pageView() {
    if (window.location.href === lastUrl) return;
    lastUrl = window.location.href;
    send("page_view");
  }

  var pushState = window.history.pushState;
  window.history.pushState = function () {
    var result = pushState.apply(this, arguments);
    pageView();
    return result;
  };
  window.addEventListener("popstate", pageView);
  window.automationTrack = function (kind) {
    send(String(kind || "activity").slice(0, 50));
  };
  pageView();
})();
