// Policy editor: add and reorder rule rows, show the suggested mode as risk changes, and show
// the damage-at-stake fields that the chosen cost kind reads.
// Everything works without this file (order numbers, one POST per action); it only saves typing.
(function () {
  "use strict";

  function renumber(list) {
    list.querySelectorAll("[data-rule-row] .pol-order").forEach(function (input, i) {
      input.value = i;
    });
  }

  document.addEventListener("click", function (event) {
    var add = event.target.closest("[data-add-rule]");
    if (add) {
      var form = add.closest("form");
      var total = form.querySelector("input[name='rules-TOTAL_FORMS']");
      var html = document.getElementById("rule-template").innerHTML.replace(/__prefix__/g, total.value);
      var list = form.querySelector("[data-rule-list]");
      list.insertAdjacentHTML("beforeend", html);
      total.value = String(Number(total.value) + 1);
      // Left without an order number: a row that stays blank is ignored on submit.
      list.lastElementChild.querySelector("input[list]").focus();
      return;
    }
    var move = event.target.closest("[data-move]");
    if (move) {
      var current = move.closest("[data-rule-row]");
      var other = move.dataset.move === "up" ? current.previousElementSibling : current.nextElementSibling;
      if (!other) return;
      if (move.dataset.move === "up") other.before(current); else other.after(current);
      renumber(current.parentElement);
      move.focus();
    }
  });

  function suggestion(form) {
    var data = document.getElementById("mode-suggestions");
    if (!data || !form) return;
    var table = JSON.parse(data.textContent);
    var rev = form.querySelector("[name=reversibility]").value;
    var blast = form.querySelector("[name=blast_radius]").value;
    var mode = form.querySelector("[name=mode]").value;
    var suggested = table[rev + "|" + blast];
    var label = form.querySelector("[data-suggested-mode]");
    if (label) label.textContent = suggested;
    var reason = form.querySelector("[data-mode-reason]");
    if (reason && !reason.querySelector(".errorlist")) {
      reason.classList.toggle("pol-muted-field", mode === suggested);
    }
    var notReady = form.querySelector("[data-not-ready]");
    if (notReady) notReady.hidden = mode !== "autonomous";
  }

  // Damage at stake: only the fields the chosen cost kind reads. As the server sends the
  // editor, a field it refused stays in sight whatever the kind, so its message is never
  // hidden; once the admin picks another kind, that kind decides.
  function costFields(form, keepRefused) {
    var kind = form && form.querySelector("[name=cost_kind]");
    if (!kind) return;
    form.querySelectorAll("[data-cost-for]").forEach(function (wrapper) {
      var applies = wrapper.dataset.costFor.split(" ").indexOf(kind.value) !== -1;
      wrapper.hidden = !applies && !(keepRefused && wrapper.querySelector(".errorlist"));
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches("[name=reversibility], [name=blast_radius], [name=mode]")) {
      suggestion(event.target.form);
    }
    if (event.target.matches("[name=cost_kind]")) costFields(event.target.form, false);
  });

  costFields(document.getElementById("policy-form"), true);
  // The preview and a refused save swap the editor in anew.
  document.addEventListener("htmx:afterSwap", function () {
    costFields(document.getElementById("policy-form"), true);
  });
})();
