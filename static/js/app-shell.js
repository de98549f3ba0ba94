// Registers the service worker (/sw.js) that makes the inbox an installable app: it keeps
// the shell for offline use and shows push notifications. A browser without service
// workers, or one that refuses (a private window), simply gets the site as it was.
(function () {
  "use strict";

  const script = document.currentScript;
  const url = script && script.dataset.serviceWorker;
  if (!url || !("serviceWorker" in navigator)) return;
  window.addEventListener("load", () => {
    navigator.serviceWorker.register(url, { scope: "/" }).catch(() => {});
  });
})();
