// Meters get their length from data-width / data-left (percent) here, because the
// Content-Security-Policy refuses style="" attributes; htmx:load covers swapped-in content.
(function () {
  "use strict";
  function size(root) {
    root.querySelectorAll("[data-width]").forEach(function (el) {
      el.style.width = el.dataset.width + "%";
    });
    root.querySelectorAll("[data-left]").forEach(function (el) {
      el.style.left = el.dataset.left + "%";
    });
  }
  document.addEventListener("htmx:load", function (event) { size(event.target); });
  document.addEventListener("DOMContentLoaded", function () { size(document); });
})();
