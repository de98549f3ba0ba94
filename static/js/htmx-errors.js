// htmx leaves 4xx and 5xx answers unswapped, so a refused form would say nothing. A refusal
// the server explains (it names where, with HX-Retarget) is swapped there; any other failed
// request still gets a plain message in the page's alert region, never silence.
(function () {
  "use strict";

  document.addEventListener("htmx:beforeSwap", (event) => {
    const xhr = event.detail.xhr;
    if (xhr.status >= 400 && xhr.getResponseHeader("HX-Retarget")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  document.addEventListener("htmx:responseError", (event) => {
    const box = document.getElementById("page-alert");
    if (!box) return;
    const status = event.detail.xhr.status;
    const text = status === 503
      ? "The server is busy or briefly unavailable; nothing was changed. Try again in a moment."
      : "That did not work (HTTP " + status + "); nothing was changed. Reload the page and try again.";
    const alert = document.createElement("p");
    alert.className = "alert alert-error";
    alert.textContent = text;
    box.replaceChildren(alert);
  });

  document.addEventListener("htmx:sendError", () => {
    const box = document.getElementById("page-alert");
    if (!box) return;
    const alert = document.createElement("p");
    alert.className = "alert alert-error";
    alert.textContent = "The server could not be reached; nothing was changed. Check your connection and try again.";
    box.replaceChildren(alert);
  });

  // A new request clears the last alert: it spoke of the previous one.
  document.addEventListener("htmx:beforeRequest", () => {
    const box = document.getElementById("page-alert");
    if (box) box.replaceChildren();
  });
})();
