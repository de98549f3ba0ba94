// The reviewer inbox: keyboard shortcuts, selection for batches, live-list bookkeeping and
// the undo countdown. Every shortcut clicks a visible button, so keys and taps share one path.
(function () {
  "use strict";

  // 409 (already decided) and 422 (invalid input) carry a fragment that explains; show it.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "409|422", swap: true, error: false },
    { code: "[45]..", swap: false, error: true },
  ];

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  // Requests chosen with x, kept across list refreshes: id -> the version of its proposal when
  // chosen, which the batch sends so that a request revised since then is left alone.
  const selected = new Map();
  const wide = window.matchMedia("(min-width: 901px)");
  let batchVerb = ""; // the confirmed batch's outcome (the clicked button loses focus to the dialog)

  const rows = () => $$("#list .inbox-row");
  // Which list is showing: "" pending requests, "second" second reviews, "periodic" periodic review.
  const listTab = () => { const nav = $("#list [data-tab]"); return nav ? nav.dataset.tab : ""; };
  const currentItem = () => $("#pane #item");
  const currentPk = () => (currentItem() ? currentItem().dataset.pk : "");

  function rowAfter(pk, step) {
    const all = rows();
    const index = all.findIndex((row) => row.dataset.pk === pk);
    if (index === -1) return all[0];
    return all[index + step];
  }

  // What follows a decision: the next row waiting on the reviewer (below, else above), never
  // one waiting on its agent, which has nothing to decide yet (worklist.next_item agrees).
  function nextToDecide(pk) {
    const ready = rows().filter((row) => row.dataset.turn !== "agent" || row.dataset.pk === pk);
    const index = ready.findIndex((row) => row.dataset.pk === pk);
    if (index === -1) return ready.find((row) => row.dataset.turn !== "agent");
    return [ready[index + 1], ready[index - 1]].find((row) => row && row.dataset.turn !== "agent");
  }

  function open(row) {
    if (!row) return;
    const link = $(".row-link", row);
    htmx.process(link);
    link.click();
  }

  function markActive() {
    const pk = currentPk();
    rows().forEach((row) => {
      const on = row.dataset.pk === pk;
      row.classList.toggle("is-active", on);
      if (on) {
        $(".row-link", row).setAttribute("aria-current", "true");
        row.scrollIntoView({ block: "nearest" });
      } else {
        $(".row-link", row).removeAttribute("aria-current");
      }
      const box = $(".row-check", row); // second reviews and periodic reviews are not batched
      if (box) box.checked = selected.has(row.dataset.pk);
    });
    document.body.classList.toggle("has-item", !!$("#pane .item"));
  }

  function syncSelection() {
    const bar = $("#selection-bar");
    if (!bar) return;
    for (const pk of Array.from(selected.keys())) {
      if (!$("#row-" + pk)) selected.delete(pk); // decided, by us or by others
    }
    bar.hidden = selected.size === 0;
    $("[data-selected-count]", bar).textContent = selected.size;
    $$("input[name=ids]", bar).forEach((input) => input.remove());
    selected.forEach((version, pk) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "ids";
      input.value = pk + ":" + version;
      bar.appendChild(input);
    });
  }

  function toggleSelect(pk) {
    const row = pk && $("#row-" + pk);
    if (!row || !$(".row-check", row)) return;
    selected.has(pk) ? selected.delete(pk) : selected.set(pk, row.dataset.version);
    markActive();
    syncSelection();
  }

  function notice(text) {
    const box = $("#live-notice");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(notice.timer);
    notice.timer = setTimeout(() => (box.hidden = true), 4000);
  }

  // --- deadlines and the undo countdown ---------------------------------------------------

  function untilText(ms) {
    if (ms <= 0) return "overdue";
    const min = Math.round(ms / 60000);
    if (min < 1) return "< 1 min";
    if (min < 60) return min + " min";
    const h = Math.floor(min / 60);
    if (h < 48) return h + " h " + (min % 60 ? (min % 60) + " min" : "");
    return Math.round(h / 24) + " days";
  }

  function tickDeadlines(root) {
    const now = Date.now();
    $$("time[data-deadline]", root).forEach((el) => {
      const ms = Date.parse(el.dataset.deadline) - now;
      if (Number.isNaN(ms)) return;
      const text = untilText(ms).trim();
      el.textContent = el.classList.contains("big") && ms > 0 ? "in " + text : text;
      el.classList.toggle("is-soon", ms > 0 && ms < 15 * 60000);
      el.classList.toggle("is-overdue", ms <= 0);
    });
  }

  function startCountdown() {
    const count = $("#toast [data-countdown]");
    const toast = $("#toast");
    clearInterval(startCountdown.timer);
    clearTimeout(startCountdown.hide);
    // Read the content, not the class: right after an out-of-band swap htmx still shows the
    // old toast's attributes (it settles them a moment later), hidden if that one had hidden.
    if (!toast || !$(".toast-text", toast)) return;
    toast.classList.add("is-shown");
    if ($("[data-check-result]", toast)) return; // a known-answer result stays until read
    if (!count) {
      startCountdown.hide = setTimeout(() => toast.classList.remove("is-shown"), 3000);
      return;
    }
    let left = parseInt(count.dataset.countdown, 10);
    startCountdown.timer = setInterval(() => {
      left -= 1;
      count.textContent = Math.max(left, 0) + "s";
      if (left <= 0) {
        clearInterval(startCountdown.timer);
        const form = $("form", toast);
        if (form) form.remove();
        count.textContent = "sent to the agent";
        startCountdown.hide = setTimeout(() => toast.classList.remove("is-shown"), 1500);
      }
    }, 1000);
  }

  // --- dialogs -------------------------------------------------------------------------------

  // The help lists only what applies to the open request (everything with none open): the
  // decisions it allows, and the option and revision keys only when it has options or revisions.
  function fitHelp(dialog) {
    const item = currentItem();
    const allowed = item && item.dataset.allowed !== undefined ? item.dataset.allowed.split(" ") : null;
    const has = item && item.dataset.has !== undefined ? item.dataset.has.split(" ") : null;
    $$("[data-verbs], [data-needs]", dialog).forEach((row) => {
      const verbs = row.dataset.verbs ? row.dataset.verbs.split(" ") : null;
      const refused = allowed !== null && verbs !== null && !verbs.some((verb) => allowed.includes(verb));
      const lacking = has !== null && row.dataset.needs !== undefined && !has.includes(row.dataset.needs);
      row.hidden = refused || lacking;
    });
  }

  function openDialog(id) {
    const dialog = document.getElementById(id);
    if (!dialog || dialog.open) return;
    if (dialog.id === "help-dialog") fitHelp(dialog);
    dialog.showModal();
    if (dialog.id === "batch-reject-dialog") {
      $$("[data-batch-count]", dialog).forEach((span) => (span.textContent = selected.size));
    }
    const first = $("textarea, input[type=text]", dialog);
    if (first) first.focus();
    if (dialog.id === "modify-dialog" && !dialog.hasAttribute("data-open")) checkModify();
    if (dialog.id === "respond-dialog" && first) first.setSelectionRange(first.value.length, first.value.length);
    dialog.removeAttribute("data-open"); // keep the server's error until the next edit
  }

  function checkModify() {
    const area = $("#modify-json");
    if (!area) return;
    const error = $("#modify-error");
    const deltaBox = $("#modify-delta");
    const submit = $("[data-modify-submit]");
    let value;
    try {
      value = JSON.parse(area.value);
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new Error("The action must be a JSON object: {…}.");
      }
    } catch (exc) {
      error.textContent = exc instanceof SyntaxError ? "Not valid JSON: " + exc.message : exc.message;
      area.setAttribute("aria-invalid", "true");
      submit.disabled = true;
      return;
    }
    error.textContent = "";
    area.removeAttribute("aria-invalid");
    submit.disabled = false;
    // The proposal as served: the textarea's own initial text, or after a refused edit the
    // copy kept beside it (the page carries the action once otherwise).
    const before = JSON.parse(area.dataset.original ?? area.defaultValue);
    const keys = new Set([...Object.keys(before), ...Object.keys(value)]);
    const lines = [];
    keys.forEach((key) => {
      const a = JSON.stringify(before[key]);
      const b = JSON.stringify(value[key]);
      if (a !== b) lines.push([key, key in before ? a : null, key in value ? b : null]);
    });
    deltaBox.replaceChildren();
    if (!lines.length) {
      deltaBox.innerHTML = '<span class="muted small">No change yet: saving approves as proposed.</span>';
      return;
    }
    const list = document.createElement("ul");
    list.className = "delta";
    lines.forEach(([key, a, b]) => {
      const li = document.createElement("li"); // textContent only: agent data stays text
      const code = document.createElement("code");
      code.textContent = key;
      li.append(code, " ");
      if (a !== null) li.append(Object.assign(document.createElement("del"), { textContent: a }));
      li.append(" → ");
      li.append(b === null ? Object.assign(document.createElement("em"), { textContent: "removed" })
        : Object.assign(document.createElement("ins"), { textContent: b }));
      list.appendChild(li);
    });
    deltaBox.appendChild(list);
  }

  // --- the next request, fetched ahead --------------------------------------------------------

  // While the reviewer reads a request, its neighbours in the list are fetched in the
  // background and kept here, so that j, k and a one-key decision show the next one with no
  // request on the way. A fetch ahead says so (X-Inbox-Prefetch) and the server records no
  // view; the page tells it when it puts a copy on screen (shown/). A copy is dropped once
  // old, once the list no longer has its row or has a newer version of it, and after any
  // refusal; a decision posts the version shown, so a copy gone stale is refused, never
  // decided. `localStorage["inbox-prefetch"] = "off"` turns it off (to compare, in bench/).
  const AHEAD_MS = 20000;
  const AHEAD_ROWS = [1, 2, -1]; // the next two and the one before
  const ahead = new Map(); // pk -> { at, version, fragment }
  const fetching = new Map(); // pk -> the fetch in flight, settled once its copy is kept or not
  const deciding = new Set(); // decided here, their answer not in yet: kept out of the list
  // Decisions (and undos) answered so far on this page. A list refresh sent before the latest
  // of them may still list what it settled: it is dropped and asked for again.
  let settledSeq = 0;

  function prefetchOn() {
    try {
      return localStorage.getItem("inbox-prefetch") !== "off";
    } catch (exc) {
      return true;
    }
  }

  function csrfToken() {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  }

  const rowUrl = (row) => $(".row-link", row).getAttribute("href");

  // A copy fit to show: fresh, and of the version the list has.
  function aheadFor(row) {
    const copy = row && ahead.get(row.dataset.pk);
    if (!copy) return null;
    if (Date.now() - copy.at > AHEAD_MS || copy.version !== row.dataset.version) {
      ahead.delete(row.dataset.pk);
      return null;
    }
    return copy;
  }

  function prune() {
    const listed = new Map(rows().map((row) => [row.dataset.pk, row]));
    for (const pk of Array.from(ahead.keys())) {
      if (!aheadFor(listed.get(pk))) ahead.delete(pk);
    }
  }

  function fetchAhead(row) {
    const pk = row.dataset.pk;
    if (fetching.has(pk)) return fetching.get(pk);
    if (aheadFor(row)) return Promise.resolve();
    const promise = fetchCopy(row).finally(() => fetching.delete(pk));
    fetching.set(pk, promise);
    return promise;
  }

  async function fetchCopy(row) {
    const pk = row.dataset.pk;
    try {
      const response = await fetch(rowUrl(row), {
        headers: { "HX-Request": "true", "HX-Target": "pane", "X-Inbox-Prefetch": "1" },
        credentials: "same-origin",
      });
      if (!response.ok) return;
      const template = document.createElement("template");
      template.innerHTML = await response.text();
      const item = $("#item", template.content);
      if (!item || item.dataset.pk !== pk || item.dataset.pending !== "1") return;
      ahead.set(pk, { at: Date.now(), version: item.dataset.version, fragment: template.content });
    } catch (exc) {
      // Fetching ahead is a bonus: the key falls back to asking the server then.
    }
  }

  // Once the pane is painted: the next row at once (the likeliest key), the others when the
  // browser is idle, one fetch at a time.
  function prefetchSoon() {
    if (!prefetchOn() || listTab()) return;
    clearTimeout(prefetchSoon.timer);
    prefetchSoon.timer = setTimeout(() => {
      prune();
      const from = currentPk();
      const next = rowAfter(from, AHEAD_ROWS[0]);
      const first = next ? fetchAhead(next) : Promise.resolve();
      const idle = window.requestIdleCallback || ((callback) => setTimeout(callback, 50));
      idle(async () => {
        await first;
        for (const step of AHEAD_ROWS.slice(1)) {
          if (currentPk() !== from) return; // moved on: the next call fetches around the new one
          const row = rowAfter(from, step);
          if (row && !(from === "" && step < 0)) await fetchAhead(row);
        }
      }, { timeout: 500 });
    }, 0);
  }

  function pushUrl(url) {
    // htmx's own state marker: Back then reloads the earlier URL whole (hx-history="false").
    history.replaceState({ htmx: true }, "", location.href);
    history.pushState({ htmx: true }, "", url);
  }

  // The reviewer now has the request on screen: its review clock starts (see prefetch above).
  function sendShown(row) {
    fetch(rowUrl(row) + "shown/", {
      method: "POST",
      headers: { "X-CSRFToken": csrfToken() },
      credentials: "same-origin",
      keepalive: true,
    }).catch(() => {}); // a lost beacon only leaves this review's time unknown
  }

  // What the inbox does after any new pane, from htmx or from a copy fetched ahead.
  function paneShown() {
    const dialog = $("#pane dialog[data-open]");
    if (dialog) openDialog(dialog.id);
    if (!wide.matches) window.scrollTo(0, 0);
  }

  function fillPane(content) {
    const pane = $("#pane");
    if (typeof content === "string") pane.innerHTML = content;
    else pane.replaceChildren(content);
    htmx.process(pane);
    // As after htmx's own swap: other scripts (bars.js) finish new content on htmx:load.
    Array.from(pane.children).forEach((el) => htmx.trigger(el, "htmx:load"));
    paneShown();
    markActive();
    syncSelection();
    tickDeadlines(pane); // the list's own are ticked with the list
  }

  // After the frame that shows what the key asked for: the server's work for a beacon or a
  // decision then does not compete with that frame for the CPU.
  function afterPaint(callback) {
    requestAnimationFrame(() => setTimeout(callback, 0));
  }

  // Show the row's request from its copy fetched ahead; false when there is none to show.
  function showAhead(row) {
    const copy = prefetchOn() && aheadFor(row);
    if (!copy) return false;
    ahead.delete(row.dataset.pk);
    fillPane(copy.fragment);
    pushUrl(rowUrl(row));
    afterPaint(() => sendShown(row));
    prefetchSoon();
    return true;
  }

  // The request a key asked for last: a copy still in flight is shown when it lands only if
  // no later key (or click) has moved on.
  let wanted = null;

  function go(row) {
    if (!row || showAhead(row)) return;
    const pk = row.dataset.pk;
    const pending = prefetchOn() && fetching.get(pk);
    if (!pending) {
      open(row);
      return;
    }
    // Its copy is on the way: one request, not a second one racing it.
    const from = currentPk();
    wanted = pk;
    pending.then(() => {
      if (wanted !== pk || currentPk() !== from) return;
      wanted = null;
      // A list refresh meanwhile has drawn new rows, and may no longer list this one.
      const now = $("#row-" + pk) || rowAfter(from, 1);
      if (now && !showAhead(now)) open(now);
    });
  }

  // A decision taken with one key and no dialog: the next request goes on screen at once and
  // the decision is posted behind it. The server answers with the undo toast alone; if it
  // refuses (someone decided first, the agent revised it, the decision is not allowed, an
  // error), the decided request comes back on screen with the reason and its row returns.
  function decideAhead(form) {
    const item = currentItem();
    if (!prefetchOn() || listTab() || !item || item.dataset.pending !== "1") return false;
    if (item.dataset.bundle !== undefined) return false; // the server picks its next call
    if (form.closest("dialog")) return false;
    const pk = item.dataset.pk;
    const next = nextToDecide(pk);
    if (!next || next.dataset.pk === pk || !aheadFor(next)) return false;
    const row = $("#row-" + pk);
    const place = row && { parent: row.parentNode, before: row.nextElementSibling };
    const url = location.href;
    const body = new FormData(form);
    const shown = Array.from($("#pane").childNodes, (node) => node.cloneNode(true));
    deciding.add(pk);
    if (row) row.remove();
    showAhead(next);
    const putBack = () => {
      deciding.delete(pk);
      if ($("#row-" + pk)) return;
      if (row && place.parent.isConnected) {
        place.parent.insertBefore(row, place.before && place.before.parentNode === place.parent ? place.before : null);
      } else {
        htmx.trigger(document.body, "inbox:refresh");
      }
      markActive();
    };
    const post = () => fetch(form.getAttribute("hx-post"), {
      method: "POST",
      body,
      headers: { "HX-Request": "true", "HX-Target": "pane", "X-Inbox-Next-Shown": "1", "X-CSRFToken": csrfToken() },
      credentials: "same-origin",
    });
    new Promise((resolve) => afterPaint(resolve)).then(post).then(async (response) => {
      const html = await response.text();
      if (response.ok) {
        deciding.delete(pk);
        settledSeq += 1;
        htmx.trigger(document.body, "inbox:refresh"); // the counts beside the list
        const toast = $("#toast");
        toast.outerHTML = html;
        htmx.process($("#toast"));
        startCountdown();
        return;
      }
      ahead.clear();
      putBack();
      if (response.status === 409 || response.status === 422) {
        fillPane(html); // the request as it is now, with why nothing was decided
        history.replaceState({ htmx: true }, "", url);
        prefetchSoon();
        return;
      }
      if (unreachable(response.status)) notRecordedHere(shown, pk, url, keyFor(form));
      else broughtBack(pk, url, "The server answered HTTP " + response.status + ".");
    }).catch(() => {
      ahead.clear();
      putBack();
      notRecordedHere(shown, pk, url, keyFor(form));
    });
    return true;
  }

  // A batch from the selection: its rows leave the list at once and the pane says it is on its
  // way; the server's answer then shows what it decided (with the undo toast) and the rows it
  // left alone come back. Nothing reads as decided before that answer. On a failure every row
  // comes back, selected again, with a notice.
  function batchAhead(verb, reason) {
    if (!prefetchOn() || listTab() || !selected.size) return false;
    const chosen = new Map(selected);
    const placed = rows().filter((row) => chosen.has(row.dataset.pk)).map((row) => {
      let before = row.nextElementSibling;
      while (before && chosen.has(before.dataset.pk)) before = before.nextElementSibling;
      return { row, parent: row.parentNode, before };
    });
    const bar = $("#selection-bar");
    const body = new URLSearchParams({ outcome: verb, ids: [...chosen].map(([pk, v]) => pk + ":" + v).join(",") });
    if (reason) body.set("reason", reason);
    chosen.forEach((version, pk) => deciding.add(pk));
    placed.forEach(({ row }) => row.remove());
    selected.clear();
    fillPane(batchPending(verb, chosen.size, bar.dataset.inbox));
    pushUrl(bar.dataset.inbox);
    prefetchSoon(); // the first row, for J
    const pending = () => !!$("#pane #batch-result[data-batch-pending]");
    const putBack = (pks) => {
      placed.filter(({ row }) => pks.has(row.dataset.pk)).forEach(({ row, parent, before }) => {
        if (!parent.isConnected || $("#row-" + row.dataset.pk)) return; // the refresh lists it
        parent.insertBefore(row, before && before.parentNode === parent ? before : null);
      });
    };
    const settle = (back) => {
      chosen.forEach((version, pk) => deciding.delete(pk));
      putBack(back);
      settledSeq += 1;
      markActive();
      syncSelection();
      htmx.trigger(document.body, "inbox:refresh");
    };
    const failed = (why) => {
      if (why.startsWith("Not recorded")) reconnecting();
      chosen.forEach((version, pk) => selected.set(pk, version)); // to try again
      settle(new Set(chosen.keys()));
      if (pending()) fillPane(batchPending(verb, chosen.size, bar.dataset.inbox, why));
      notice(why);
    };
    new Promise((resolve) => afterPaint(resolve)).then(() => fetch(bar.getAttribute("hx-post"), {
      method: "POST",
      body,
      headers: { "HX-Request": "true", "HX-Target": "pane", "X-CSRFToken": csrfToken() },
      credentials: "same-origin",
    })).then(async (response) => {
      const html = await response.text();
      if (!response.ok && response.status !== 422) {
        failed(unreachable(response.status) ? notRecordedText(verb === "reject" ? "⇧R" : "⇧A")
          : "The batch failed (HTTP " + response.status + "): the list shows the requests as the server has them.");
        return;
      }
      const template = document.createElement("template");
      template.innerHTML = html;
      const toast = $("#toast", template.content);
      if (toast) {
        toast.remove();
        $("#toast").replaceWith(toast);
        htmx.process(toast);
        startCountdown();
      }
      if (response.status === 422) chosen.forEach((version, pk) => selected.set(pk, version));
      const left = response.ok ? $$("[data-conflict]", template.content) : [];
      settle(response.ok ? new Set(left.map((li) => li.dataset.conflict)) : new Set(chosen.keys()));
      if (pending()) fillPane(template.content);
      else if (left.length || !response.ok) notice($(".alert", template.content).textContent.replace(/\s+/g, " ").trim());
    }).catch(() => failed(notRecordedText(verb === "reject" ? "⇧R" : "⇧A")));
    return true;
  }

  // The pane while a batch is on its way, or after it failed (`why`): built here, from text only.
  function batchPending(verb, count, inboxUrl, why) {
    const article = document.createElement("article");
    article.id = "batch-result";
    article.className = "item batch-result";
    article.dataset.batchPending = "";
    article.setAttribute("aria-labelledby", "batch-title");
    const back = Object.assign(document.createElement("a"), { className: "back-link", href: inboxUrl, textContent: "← Inbox" });
    back.dataset.back = "";
    const done = Object.assign(document.createElement("div"), { className: "batch-done" });
    const title = Object.assign(document.createElement("h1"), { id: "batch-title" });
    const word = verb === "reject" ? "Rejecting " : "Approving ";
    if (why) {
      title.textContent = "Nothing " + (verb === "reject" ? "rejected" : "approved") + " for sure";
      const alert = Object.assign(document.createElement("div"), { className: "alert alert-error notice", textContent: why });
      alert.setAttribute("role", "alert");
      done.append(title, alert);
    } else {
      article.setAttribute("aria-busy", "true");
      title.textContent = word + count + " request" + (count === 1 ? "" : "s") + "…";
      const line = Object.assign(document.createElement("p"), { className: "muted", textContent: "Sent; the server's answer lists any left as they were." });
      done.append(title, line);
    }
    const hint = Object.assign(document.createElement("p"), { className: "muted small" });
    hint.append("Press ", Object.assign(document.createElement("kbd"), { className: "key", textContent: "J" }), " for the next request.");
    done.append(hint);
    article.append(back, done);
    return article;
  }

  // After a failure the server did not explain: the request as the server has it now (decided
  // or not), and a word on what happened.
  function broughtBack(pk, url, why) {
    htmx.ajax("GET", url, { target: "#pane" }).then(() => {
      history.replaceState({ htmx: true }, "", url);
      const box = $("#pane-notice");
      if (!box || currentPk() !== pk) return;
      const alert = document.createElement("div");
      alert.className = "alert alert-error notice";
      alert.setAttribute("role", "alert");
      const strong = document.createElement("strong");
      strong.textContent = why;
      alert.append(strong, " Your decision on #" + pk + " may not have been recorded: here is the request as it stands.");
      box.replaceChildren(alert);
    });
  }

  // --- riding out an outage ------------------------------------------------------------------

  // A decision the server did not answer, or answered with a 5xx, was not recorded: while the
  // database is down nothing is written (a 409 on the next try says if it was after all). The
  // request stays on screen with the key that repeats it; the list's polling backs off, with a
  // banner, until the server answers again. A 2xx is recorded, and is never shown otherwise.
  const POLL_CAP_MS = 32000;
  const poller = $("#inbox-poll");
  const pollBase = poller ? Number(poller.dataset.pollMs) || 8000 : 8000;
  let pollWait = pollBase;
  let pollTimer = 0;

  const unreachable = (status) => status === 0 || status >= 500;
  const notRecordedText = (key) => "Not recorded: the service is reconnecting. Press " + key + " again.";

  // The key that sends this form again: its own button's, or the one that opens its dialog.
  function keyFor(form) {
    const dialog = form.closest("dialog");
    const button = dialog ? $('[data-open-dialog="' + dialog.id + '"][data-shortcut]') : $("[data-shortcut]", form);
    if (!button) return "the button";
    const key = button.dataset.shortcut; // shown as on the buttons: A for a, ⇧A for A
    return key === key.toLowerCase() ? key.toUpperCase() : "⇧" + key;
  }

  function notRecorded(key) {
    const alert = document.createElement("div");
    alert.className = "alert alert-error notice";
    alert.setAttribute("role", "alert");
    alert.dataset.notRecorded = "";
    const strong = document.createElement("strong");
    strong.textContent = "Not recorded:";
    const kbd = Object.assign(document.createElement("kbd"), { className: "key", textContent: key });
    const press = Object.assign(document.createElement("span"), { className: "kbd-hint" });
    press.append("Press ", key === "the button" ? key : kbd, " again.");
    const tap = Object.assign(document.createElement("span"), { className: "touch-hint", textContent: "Tap it again." });
    alert.append(strong, " the service is reconnecting. ", press, tap); // keys are hidden on a phone
    const box = $("#pane #pane-notice");
    if (box) box.replaceChildren(alert);
    else notice(notRecordedText(key));
    reconnecting();
  }

  // The request decided ahead comes back as it was shown: the server cannot be asked for it.
  function notRecordedHere(shown, pk, url, key) {
    const fragment = document.createDocumentFragment();
    fragment.append(...shown);
    fillPane(fragment);
    history.replaceState({ htmx: true }, "", url);
    if (currentPk() === pk) notRecorded(key);
  }

  // The banner, and the next poll a full wait from now (what the banner says).
  function reconnecting() {
    schedulePoll();
    const banner = $("#reconnecting");
    if (!banner) return;
    banner.hidden = false;
    $("[data-reconnect-text]", banner).textContent =
      "Next try in " + Math.round(pollWait / 1000) + " s.";
  }

  function schedulePoll() {
    clearTimeout(pollTimer);
    if (poller) pollTimer = setTimeout(() => htmx.trigger(poller, "inbox:poll"), pollWait);
  }

  function pollAnswered(status) {
    const banner = $("#reconnecting");
    if (unreachable(status)) {
      pollWait = Math.min(pollWait * 2, POLL_CAP_MS);
      reconnecting();
      return;
    }
    pollWait = pollBase;
    if (banner && !banner.hidden) {
      banner.hidden = true;
      // A decision that was not recorded stays said: the refresh its failure asks for must
      // not replace that with "Reconnected" before the reviewer has read it.
      const box = $("#live-notice");
      const unsent = box && !box.hidden && box.textContent.startsWith("Not recorded");
      if (!unsent) notice("Reconnected: the list is up to date.");
    }
    schedulePoll();
  }

  document.body.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.elt === poller) pollAnswered(event.detail.xhr.status);
  });

  // A failed decision sent by htmx (no copy ahead, a dialog, a batch, an undo): said in the
  // pane, not in the page's alert, which the next poll would clear.
  function decisionFailed(event) {
    const elt = event.detail.elt;
    const path = event.detail.requestConfig ? event.detail.requestConfig.path : "";
    if (elt === poller) {
      event.stopPropagation(); // the banner says it
      return;
    }
    if (!/\/(decide|batch|undo)\/$/.test(path) || !unreachable(event.detail.xhr.status)) return;
    event.stopPropagation();
    const form = elt.closest("form") || elt;
    const dialog = form.closest("dialog");
    if (dialog) dialog.close(); // what was typed stays in it for the next try
    notRecorded(keyFor(form));
  }
  document.body.addEventListener("htmx:responseError", decisionFailed);
  document.body.addEventListener("htmx:sendError", decisionFailed);

  // --- keyboard ------------------------------------------------------------------------------

  function press(key) {
    const button = $('[data-shortcut="' + key + '"]:not([disabled])');
    if (!button || button.closest("[hidden]")) return false;
    htmx.process(button.closest("form") || button); // a key can beat htmx's settle step
    button.click();
    return true;
  }

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target.closest("input, textarea, select, [contenteditable]");
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && typing) {
      const form = target.closest("form");
      if (!form) return;
      event.preventDefault();
      // The same gate as the button: an edit the check refuses is not sent.
      if (!$("[type=submit][disabled]", form)) form.requestSubmit();
      return;
    }
    if (event.key === "Enter" && !event.shiftKey && target.matches("#reject-reason, [data-enter-submits]")) {
      event.preventDefault();
      target.form.requestSubmit();
      return;
    }
    // Esc leaves a text box on the page (a dialog's Esc closes the dialog natively).
    if (event.key === "Escape" && target.matches("textarea") && !target.closest("dialog")) {
      target.blur();
      event.preventDefault();
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if ($("dialog[open]")) return; // Esc closes it natively
    const key = event.key;
    let handled = true;
    if (key === "j") go(rowAfter(currentPk(), 1));
    else if (key === "k") go(rowAfter(currentPk(), -1));
    else if (key === "x") toggleSelect(currentPk() || (rows()[0] && rows()[0].dataset.pk));
    else if (key === "?") openDialog("help-dialog");
    else if (key === "/") $("#q").focus();
    else if (key === "A" || key === "R") handled = press(key); // shift: the selection
    else if (/^[1-9aercsuv]$/.test(key)) handled = press(key); // a missing button: nothing
    else handled = false;
    if (handled) event.preventDefault();
  });

  // --- clicks --------------------------------------------------------------------------------

  document.addEventListener("click", (event) => {
    const el = event.target.closest(
      "[data-open-dialog], [data-close-dialog], [data-reason], [data-focus], [data-set-filter], [data-clear-selection], [data-poll-now], [data-dismiss-toast]"
    );
    if (!el) return;
    if (el.hasAttribute("data-poll-now")) htmx.trigger(poller, "inbox:poll");
    else if (el.hasAttribute("data-dismiss-toast")) el.closest("#toast").classList.remove("is-shown");
    else if (el.dataset.openDialog) openDialog(el.dataset.openDialog);
    else if (el.hasAttribute("data-close-dialog")) el.closest("dialog").close();
    else if (el.dataset.reason) {
      const area = $("textarea[name=reason]", el.closest("form"));
      area.value = el.dataset.reason;
      area.focus();
    } else if (el.dataset.focus) {
      const field = document.getElementById(el.dataset.focus);
      field.scrollIntoView({ block: "center" });
      field.focus();
    } else if (el.hasAttribute("data-set-filter")) {
      const form = $("#filters");
      form.queue.value = "";
      form.who.value = "";
      form.tab.value = ""; // a chip of the requests' list brings that list back
      const [name, value] = el.dataset.setFilter.split("=");
      if (name) form[name].value = value;
      htmx.trigger(form, "submit");
    } else if (el.hasAttribute("data-clear-selection")) {
      selected.clear();
      markActive();
      syncSelection();
    }
  });

  document.addEventListener("change", (event) => {
    const el = event.target;
    if (el.classList.contains("row-check")) {
      const row = el.closest(".inbox-row");
      el.checked ? selected.set(row.dataset.pk, row.dataset.version) : selected.delete(row.dataset.pk);
      syncSelection();
    } else if (el.matches("[data-check-all]")) {
      $$("#group-form input[name=ids]").forEach((box) => (box.checked = el.checked));
    }
    if (el.closest("#group-form")) {
      const n = $$("#group-form input[name=ids]:checked").length;
      $$("[data-group-count]").forEach((span) => (span.textContent = n));
    }
  });

  document.addEventListener("input", (event) => {
    if (event.target.id === "modify-json") checkModify();
  });

  // --- htmx lifecycle ------------------------------------------------------------------------

  document.body.addEventListener("htmx:configRequest", (event) => {
    const path = event.detail.path;
    const item = currentItem();
    if (event.detail.target && event.detail.target.id === "pane") wanted = null; // moved on
    if (path.includes("/inbox/poll/")) {
      event.detail.headers["X-Inbox-Settled"] = String(settledSeq);
      if (item && item.dataset.pending === "1") {
        event.detail.parameters.current = item.dataset.pk;
        // Ask whether the proposal on screen is still the current one, until we have been told.
        if (!$("#pane-notice[data-revised]")) {
          event.detail.parameters.current_version = item.dataset.version;
          // Waiting on the agent: the server says when it has answered.
          event.detail.parameters.current_turn = item.dataset.turn;
        }
      }
      // The rows in view: the server names those another actor settled since the last look.
      if (!listTab()) event.detail.parameters.shown = rows().map((row) => row.dataset.pk).join(",");
    }
    if (path.endsWith("/inbox/batch/")) {
      const elt = event.detail.elt;
      if (batchVerb && elt.matches("[data-confirm-batch]")) event.detail.parameters.outcome = batchVerb;
      // One field, not one per request: a 1,000-row batch stays under Django's field limit.
      const ids = elt.matches("#selection-bar, [data-batch-selection]")
        ? [...selected].map(([pk, version]) => pk + ":" + version)
        : $$("#group-form input[name=ids]:checked").map((box) => box.value);
      event.detail.parameters.ids = ids.join(",");
    }
    if (/\/decide\/$/.test(path)) {
      const after = nextToDecide(currentPk());
      if (after && after.dataset.pk !== currentPk()) event.detail.parameters.next = after.dataset.pk;
    }
  });

  // A one-key decision with the next request fetched ahead: decided behind it (decideAhead).
  document.body.addEventListener("htmx:confirm", (event) => {
    const form = event.detail.elt;
    if (form.matches && form.matches("form[hx-post$='/decide/']") && decideAhead(form)) {
      event.preventDefault();
    }
  });

  // Batches confirm with the count, in our own dialog rather than window.confirm.
  document.body.addEventListener("htmx:confirm", (event) => {
    const form = event.detail.elt;
    if (!form.matches || !form.matches("[data-confirm-batch]")) return;
    const submitter = event.detail.triggeringEvent && event.detail.triggeringEvent.submitter;
    const verb = (submitter && submitter.value) || form.dataset.confirmBatch || "approve";
    const count = form.id === "selection-bar" ? selected.size : $$("input[name=ids]:checked", form).length;
    event.preventDefault();
    if (verb === "reject" && !$("#group-reason", form).value.trim()) {
      $("#group-reason", form).focus();
      notice("Give a reason to reject; the agent reads it.");
      return;
    }
    if (!count) { notice("Select at least one request."); return; }
    const dialog = $("#confirm-dialog");
    const word = verb === "reject" ? "Reject" : "Approve";
    $("#confirm-title", dialog).firstChild.textContent = word + " ";
    $$("[data-confirm-count]", dialog).forEach((span) => (span.textContent = count));
    const ok = $("[data-confirm-ok]", dialog);
    ok.className = "btn " + (verb === "reject" ? "btn-reject btn-reject-solid" : "btn-approve");
    ok.firstChild.textContent = word + " ";
    dialog.returnValue = "";
    dialog.addEventListener("close", function onClose() {
      dialog.removeEventListener("close", onClose);
      if (dialog.returnValue !== "ok") return;
      if (form.id === "selection-bar" && batchAhead(verb, "")) return;
      batchVerb = verb;
      event.detail.issueRequest(true);
    });
    dialog.showModal();
  });

  // The batch reject dialog is its own confirmation (it states the count); sent behind the
  // list like an approval when it can be (batchAhead), else closed once sent.
  document.body.addEventListener("htmx:confirm", (event) => {
    const form = event.detail.elt;
    if (!form.matches || !form.matches("[data-batch-selection]")) return;
    const reason = $("textarea[name=reason]", form).value.trim();
    if (!reason || !batchAhead("reject", reason)) return;
    event.preventDefault();
    form.reset();
    form.closest("dialog").close();
  });

  document.body.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (!form.matches || !form.matches("[data-batch-selection]") || !event.detail.successful) return;
    form.reset();
    form.closest("dialog").close();
  });

  let before = new Set();
  document.body.addEventListener("htmx:afterRequest", (event) => {
    const path = event.detail.requestConfig.path;
    if (event.detail.successful && /\/(decide|batch|undo)\/$/.test(path)) settledSeq += 1;
  });

  document.body.addEventListener("htmx:beforeSwap", (event) => {
    const sent = event.detail.requestConfig.headers["X-Inbox-Settled"];
    if (sent !== undefined && Number(sent) !== settledSeq) {
      event.detail.shouldSwap = false; // it counted the list before a decision landed
      htmx.trigger(document.body, "inbox:refresh");
      return;
    }
    if (event.detail.target.id === "list") before = new Set(rows().map((row) => row.dataset.pk));
  });

  document.body.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (target.id === "list" && event.detail.requestConfig.path.includes("/inbox/poll/") && !listTab()) {
      if (before.size) {
        rows().forEach((row) => row.classList.toggle("is-new", !before.has(row.dataset.pk)));
      }
      // Only the server knows who settled a row that left: it names those settled by others.
      const settled = $("#list [data-settled-notice]");
      if (settled) notice(settled.dataset.settledNotice);
    }
    if (target.id === "list") deciding.forEach((pk) => { const row = $("#row-" + pk); if (row) row.remove(); });
    if (target.id === "pane") paneShown();
    // htmx gives focus back to the reply box it replaced; once the message is sent the keys
    // are the reviewer's again (v, a, j), unless the box says what to fix.
    const box = $("#reply-body");
    if (target.id === "pane" && box && document.activeElement === box && !$(".composer .field-error")
        && event.detail.requestConfig.verb === "post") box.blur();
    if (target.id === "toast") startCountdown();
    markActive();
    syncSelection();
    tickDeadlines();
    if (target.id === "pane" || target.id === "list") prefetchSoon();
  });

  document.body.addEventListener("htmx:oobAfterSwap", (event) => {
    if (event.detail.target.id === "toast") startCountdown();
  });

  // A notice about the open item (settled or revised elsewhere) that arrives after the reviewer
  // has moved on to another item is about a request no longer on screen: drop it.
  document.body.addEventListener("htmx:oobBeforeSwap", (event) => {
    const fragment = event.detail.fragment;
    const el = fragment && (fragment.firstElementChild || fragment);
    const about = el && el.dataset && (el.dataset.closed || el.dataset.revised);
    if (about && about !== currentPk()) event.detail.shouldSwap = false;
  });

  // htmx applies a swapped element's own attributes only once it settles, so the list's
  // highlight of the open row is set again then.
  document.body.addEventListener("htmx:afterSettle", markActive);

  // --- start ---------------------------------------------------------------------------------

  // After htmx has wired up the page (its DOMContentLoaded handler was registered first).
  document.addEventListener("DOMContentLoaded", () => {
    markActive();
    syncSelection();
    tickDeadlines();
    setInterval(() => tickDeadlines(), 30000);
    schedulePoll();
    const dialog = $("dialog[data-open]");
    if (dialog) openDialog(dialog.id);
    if (wide.matches && $("#item-empty") && rows().length && !location.search.includes("q=")) {
      open(rows()[0]); // on a laptop the first request opens at once; a phone shows the list
      // The first j after a load is the likeliest key: its copy is asked for alongside.
      if (prefetchOn() && !listTab() && rows()[1]) fetchAhead(rows()[1]);
    } else {
      prefetchSoon(); // else once that one is on screen
    }
  });
})();
