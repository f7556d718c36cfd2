// Liaison workspace: small progressive enhancement. Every page works without this file;
// with it, new messages appear live (server-sent events), the enrolment code is taken from
// the link's fragment, and the RED recipients show only when RED is chosen.
"use strict";

(function () {
  // Live updates: the server sends, per new message the officer may see, its group, id,
  // the message it replies to and a ready-made (escaped) timeline row.
  var body = document.body;
  var source = body.getAttribute("data-events");
  if (source && window.EventSource) {
    var live = document.getElementById("live");
    var events = new EventSource(source);
    events.addEventListener("message", function (e) {
      var m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      var timeline = document.querySelector("ol.timeline[data-group='" + m.group + "'][data-live]");
      if (timeline && !document.getElementById("m-" + m.id)) {
        timeline.insertAdjacentHTML("afterbegin", m.row);
        var empty = document.getElementById("empty-timeline");
        if (empty) { empty.remove(); }
      }
      var badge = document.querySelector("[data-unread-for='" + m.group + "']");
      if (badge && !m.own) {
        var n = parseInt(badge.getAttribute("data-count") || "0", 10) + 1;
        badge.setAttribute("data-count", String(n));
        badge.textContent = String(n);
        badge.classList.remove("zero");
      }
      var thread = document.querySelector("ol.thread[data-root]");
      if (thread && m.reply_to && thread.querySelector("[data-id='" + m.reply_to + "']")
          && !thread.querySelector("[data-id='" + m.id + "']")) {
        thread.insertAdjacentHTML("beforeend", m.thread_item);
      }
      if (live) { live.textContent = m.announce; }
    });
  }

  // Enrolment links carry the code in the fragment, which never reaches a server.
  var code = document.getElementById("code");
  if (code && !code.value && window.location.hash.length > 1) {
    code.value = decodeURIComponent(window.location.hash.slice(1));
    history.replaceState(null, "", window.location.pathname);
  }

  // Compose: RED recipients only matter for RED.
  var handling = document.getElementById("handling");
  var recipients = document.getElementById("recipients");
  if (handling && recipients) {
    var sync = function () { recipients.hidden = handling.value !== "red"; };
    handling.addEventListener("change", sync);
    sync();
  }

  // Photo previews, before upload.
  document.querySelectorAll("input[type=file][data-preview]").forEach(function (input) {
    input.addEventListener("change", function () {
      var out = document.getElementById(input.getAttribute("data-preview"));
      if (!out) { return; }
      out.textContent = "";
      Array.prototype.forEach.call(input.files, function (f) {
        if (!/^image\//.test(f.type)) { return; }
        var img = document.createElement("img");
        img.src = URL.createObjectURL(f);
        img.alt = f.name;
        img.width = 160;
        out.appendChild(img);
      });
    });
  });
})();
