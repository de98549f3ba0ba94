// The inbox's service worker. It keeps the app's shell (styles, scripts, icons and the
// offline page) so an installed app opens without a network, and it shows push
// notifications. It never stores a page, an API answer or an htmx fragment: agent data stays
// on the server. /sw.js serves this file with SHELL_CACHE, SHELL_URLS, OFFLINE_URL and
// ICON_URL written above it (the files' names change with their content in production).
"use strict";

const SHELL = new Set(SHELL_URLS.map((url) => new URL(url, self.location.origin).href));

self.addEventListener("install", (event) => {
  // Fetched without cookies: the cached offline page is the same for everyone.
  const requests = SHELL_URLS.map((url) => new Request(url, { credentials: "omit", cache: "reload" }));
  event.waitUntil(
    caches.open(SHELL_CACHE)
      .then((cache) => cache.addAll(requests))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  // A new shell replaces the old one whole: no file of a previous deploy is left behind.
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((name) => name !== SHELL_CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  if (request.mode === "navigate") {
    // Pages always come from the network; the offline page only when there is none.
    event.respondWith(
      fetch(request).catch(() => caches.match(OFFLINE_URL).then((page) => page || Response.error())),
    );
    return;
  }
  if (SHELL.has(request.url)) {
    event.respondWith(caches.match(request).then((hit) => hit || fetch(request)));
  }
  // Anything else (fragments, the API, raw JSON, other static files) is the browser's own
  // business: not answered here, and never cached.
});

// A push message's link, kept to this site: a message can only open one of our pages.
function ownUrl(url) {
  try {
    const parsed = new URL(url || "/inbox/", self.location.origin);
    if (parsed.origin === self.location.origin) return parsed.href;
  } catch (error) {
    // not a URL: the inbox instead
  }
  return new URL("/inbox/", self.location.origin).href;
}

self.addEventListener("push", (event) => {
  let message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch (error) {
    message = {};
  }
  const options = {
    body: typeof message.body === "string" ? message.body : "",
    icon: ICON_URL,
    badge: ICON_URL,
    data: { url: ownUrl(message.url) },
  };
  if (typeof message.tag === "string" && message.tag) {
    options.tag = message.tag;
    options.renotify = true;
  }
  const title = typeof message.title === "string" && message.title ? message.title : "HITL Review";
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = ownUrl(event.notification.data && event.notification.data.url);
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    // An open inbox first, else any window of ours; a new one when there is none.
    const open = windows.find((client) => new URL(client.url).pathname.startsWith("/inbox/")) || windows[0];
    if (open) {
      try {
        const focused = await open.focus();
        await (focused || open).navigate(url);
        return;
      } catch (error) {
        // a window this worker does not control cannot be navigated: open a new one
      }
    }
    await self.clients.openWindow(url);
  })());
});
