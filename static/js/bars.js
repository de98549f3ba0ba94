// Meters get their length from data-width / data-left (percent) here, because the
// Content-Security-Policy refuses style="" attributes; htmx:load covers swapped-in content.
// Wide tables and charts scroll sideways on a phone: while one does, it takes keyboard focus
// so arrow keys can scroll it (mouse and touch users can already); otherwise it is no tab stop.
(function () {
  "use strict";
  var SCROLLERS = ".table-wrap, .metrics-chart";
  function size(root) {
    root.querySelectorAll("[data-width]").forEach(function (el) {
      el.style.width = el.dataset.width + "%";
    });
    root.querySelectorAll("[data-left]").forEach(function (el) {
      el.style.left = el.dataset.left + "%";
    });
  }
  function reachable() {
    document.querySelectorAll(SCROLLERS).forEach(function (el) {
      if (el.scrollWidth > el.clientWidth) el.setAttribute("tabindex", "0");
      else if (el.getAttribute("tabindex") === "0") el.removeAttribute("tabindex");
    });
  }
  var pending = 0;
  function later() {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(reachable);
  }
  document.addEventListener("htmx:load", function (event) { size(event.target); later(); });
  document.addEventListener("DOMContentLoaded", function () { size(document); reachable(); });
  window.addEventListener("resize", later);
})();
