// The push section of a reviewer's Channels page: "Turn on notifications on this device"
// asks the browser's permission, subscribes it with the server's VAPID public key and sends
// the subscription to the server, which lists the device.
(function () {
  "use strict";

  const section = document.getElementById("push");
  const button = section && section.querySelector("[data-push-enable]");
  if (!button) return;
  const status = section.querySelector("[data-push-status]");

  function say(text, kind) {
    status.textContent = text;
    status.className = kind ? "alert alert-" + kind : "muted";
    status.hidden = !text;
  }

  function applicationServerKey(base64url) {
    const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function sameKey(subscription, key) {
    const current = subscription.options && subscription.options.applicationServerKey;
    if (!current) return true;
    const bytes = new Uint8Array(current);
    return bytes.length === key.length && bytes.every((b, i) => b === key[i]);
  }

  async function subscribe(registration, key, fresh) {
    let subscription = await registration.pushManager.getSubscription();
    // A subscription made for other keys (the server's were changed), or one the server
    // holds for someone else: replaced by a new one, with a new endpoint.
    if (subscription && (fresh || !sameKey(subscription, key))) {
      await subscription.unsubscribe();
      subscription = null;
    }
    return subscription || registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  }

  async function send(subscription) {
    return fetch(section.dataset.subscribeUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": section.dataset.csrf },
      body: JSON.stringify(subscription.toJSON()),
    });
  }

  async function turnOn() {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") {
      say("Notifications are blocked for this site. Allow them in your browser's site settings, then try again.", "warn");
      return;
    }
    say("Turning notifications on…");
    const registration = await navigator.serviceWorker.register(section.dataset.serviceWorker, { scope: "/" });
    await navigator.serviceWorker.ready;
    const key = applicationServerKey(section.dataset.vapidKey);
    let response = await send(await subscribe(registration, key, false));
    if (response.status === 409) response = await send(await subscribe(registration, key, true));
    if (!response.ok) {
      let detail = "HTTP " + response.status;
      try {
        detail = (await response.json()).detail || detail;
      } catch (error) {
        // not JSON: the status says enough
      }
      say("The server did not take this device: " + detail, "error");
      return;
    }
    say("Notifications are on for this device.", "ok");
    window.location.reload();
  }

  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    button.disabled = true;
    say("This browser cannot receive push notifications here: they need the site over HTTPS, and on an iPhone or iPad the app added to your Home Screen (Share, then Add to Home Screen) and opened from there.", "warn");
    return;
  }
  // Already on for this browser: say so, and the button renews the subscription.
  navigator.serviceWorker.getRegistration("/").then(async (registration) => {
    const subscription = registration && (await registration.pushManager.getSubscription());
    if (subscription && Notification.permission === "granted") {
      say("Notifications are on for this device.", "ok");
      button.textContent = "Renew notifications on this device";
    }
  }).catch(() => {});
  button.addEventListener("click", () => {
    button.disabled = true;
    turnOn()
      .catch((error) => say("Notifications could not be turned on: " + error.message, "error"))
      .finally(() => { button.disabled = false; });
  });
})();
