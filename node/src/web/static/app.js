// Liaison workspace: small progressive enhancement. Every page works without this file;
// with it, new messages appear live (server-sent events), the enrolment code is taken from
// the link's fragment, and the RED recipients show only when RED is chosen, and chosen photos are previewed.
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

  // Files chosen in a compose form: a preview of each photo, and a warning on each file that
  // carries metadata the node will remove (EXIF or XMP in a JPEG, text or EXIF chunks in a
  // PNG, EXIF or XMP in a WebP). Only the first 256 KiB are read, where such blocks sit.
  var bytesOf = function (text) {
    return Array.prototype.map.call(text, function (c) { return c.charCodeAt(0); });
  };
  var contains = function (hay, needle) {
    outer: for (var i = 0; i + needle.length <= hay.length; i++) {
      for (var k = 0; k < needle.length; k++) {
        if (hay[i + k] !== needle[k]) { continue outer; }
      }
      return true;
    }
    return false;
  };
  var carriesMetadata = function (b) {
    var any = function (marks) {
      return marks.some(function (m) { return contains(b, bytesOf(m)); });
    };
    if (b[0] === 0xFF && b[1] === 0xD8) { return any(["Exif\0\0", "http://ns.adobe.com/xap/"]); }
    if (b[0] === 0x89 && b[1] === 0x50) { return any(["eXIf", "tEXt", "zTXt", "iTXt"]); }
    if (contains(b.subarray(8, 12), bytesOf("WEBP"))) { return any(["EXIF", "XMP "]); }
    return false;
  };
  document.querySelectorAll("input[type=file][data-preview]").forEach(function (input) {
    input.addEventListener("change", function () {
      var out = document.getElementById(input.getAttribute("data-preview"));
      if (!out) { return; }
      out.textContent = "";
      Array.prototype.forEach.call(input.files, function (f) {
        var figure = document.createElement("figure");
        if (/^image\/(jpeg|png|webp|gif|bmp)$/.test(f.type)) {
          var img = document.createElement("img");
          img.src = URL.createObjectURL(f);
          img.alt = f.name;
          img.addEventListener("load", function () { URL.revokeObjectURL(img.src); });
          figure.appendChild(img);
        }
        var caption = document.createElement("figcaption");
        caption.textContent = f.name;
        figure.appendChild(caption);
        out.appendChild(figure);
        if (!window.FileReader) { return; }
        var reader = new FileReader();
        reader.addEventListener("load", function () {
          if (carriesMetadata(new Uint8Array(reader.result))) {
            var warning = document.createElement("p");
            warning.className = "metadata-warning";
            warning.textContent = out.getAttribute("data-metadata-warning");
            figure.appendChild(warning);
          }
        });
        reader.readAsArrayBuffer(f.slice(0, 262144));
      });
    });
  });
})();
