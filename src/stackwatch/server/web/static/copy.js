// Copy buttons of the "Connect an SDK" page: <button class="copy" data-copy="ID"> copies the text of the element
// with that id. A file of its own, not an inline script: the Content-Security-Policy allows scripts from 'self' only.
(function () {
  "use strict";

  function fallback(text) {
    // Without the Clipboard API (a page served over plain HTTP to another host is no secure context).
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    document.body.removeChild(area);
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallback(text); });
    }
    return fallback(text);
  }

  function say(button, words) {
    var status = document.querySelector(".copy-status");
    button.textContent = words;
    if (status) status.textContent = words;
    window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.copy[data-copy]") : null;
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    copy(source.textContent).then(
      function () { say(button, "Copied"); },
      function () { say(button, "Select the text and copy it"); }
    );
  });
})();
