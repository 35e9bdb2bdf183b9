// Review console keyboard shortcuts and text-selection → blocklist proposal.
// Every action is a plain POST form; this file only adds shortcuts on top of them.
(function () {
  "use strict";
  if (window.htmx) { window.htmx.config.includeIndicatorStyles = false; }  // strict CSP: no injected <style>

  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr.queue-row")); }
  var selected = -1;

  function select(index) {
    var all = rows();
    if (!all.length) { return; }
    selected = Math.max(0, Math.min(all.length - 1, index));
    all.forEach(function (row, i) { row.classList.toggle("selected", i === selected); });
    all[selected].scrollIntoView({ block: "nearest" });
  }

  function submit(form) {
    if (!form) { return; }
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
  }

  function toggleHelp() {
    var help = document.getElementById("keys-help");
    if (help) { help.hidden = !help.hidden; }
  }

  function approve() {
    var form = document.getElementById("approve-form");
    if (!form) { return; }
    var note = form.querySelector("textarea");
    if (form.dataset.noteRequired === "1" && !note.value.trim()) { note.focus(); return; }
    submit(form);
  }

  function block() {
    var note = document.getElementById("block-note");
    if (note) { note.scrollIntoView({ block: "center" }); note.focus(); }
  }

  function claim() {
    var own = document.getElementById("claim-form");
    if (own) { submit(own); return; }
    var row = rows()[selected];
    if (row) { submit(row.querySelector("form.claim-form")); }
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    if (typing) {
      // Ctrl/Cmd+Enter sends the form being typed in (the block note, typically).
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.form) {
        event.preventDefault();
        submit(target.form);
      }
      if (event.key === "Escape") { target.blur(); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var handlers = {
      j: function () { select(selected + 1); },
      k: function () { select(selected - 1); },
      o: function () { var row = rows()[selected]; if (row) { window.location.href = row.dataset.href; } },
      Enter: function () { var row = rows()[selected]; if (row) { window.location.href = row.dataset.href; } },
      c: claim,
      a: approve,
      b: block,
      n: function () { submit(document.getElementById("next-form")); },
      "?": toggleHelp,
      Escape: function () { var help = document.getElementById("keys-help"); if (help) { help.hidden = true; } }
    };
    var handler = handlers[event.key];
    if (handler) { event.preventDefault(); handler(); }
  });

  document.addEventListener("click", function (event) {
    if (event.target && event.target.id === "keys-toggle") { toggleHelp(); }
    var row = event.target.closest && event.target.closest("tr.queue-row");
    if (row) { select(rows().indexOf(row)); }
  });

  // Selecting text in the prompt or output fills the blocklist proposal of the block form.
  document.addEventListener("mouseup", function () {
    var field = document.getElementById("id_propose_text");
    var sel = window.getSelection();
    if (!field || !sel || sel.isCollapsed) { return; }
    var anchor = sel.anchorNode && sel.anchorNode.parentElement;
    if (!anchor || !anchor.closest(".text-pane")) { return; }
    var text = sel.toString().trim();
    if (text) { field.value = text.slice(0, 500); }
  });

  if (rows().length) { select(0); }
})();
