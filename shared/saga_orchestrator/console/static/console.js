// The saga console's live updates: poll the JSON endpoint the page names (body data-poll) every
// data-every milliseconds. The list page swaps in the table rows the server rendered (and escaped); a
// saga page reloads when the saga changed (data-version), unless the person is writing a reason.
"use strict";

(function () {
  const body = document.body;
  const url = body.dataset.poll;
  if (!url) {
    return;
  }
  const every = Number(body.dataset.every) || 2000;
  const live = document.getElementById("live");

  function say(text, failed) {
    if (live) {
      live.textContent = text;
      live.classList.toggle("offline", Boolean(failed));
    }
  }

  function typing() {
    const active = document.activeElement;
    if (active && (active.tagName === "TEXTAREA" || active.tagName === "SELECT")) {
      return true;
    }
    return Array.from(document.querySelectorAll("textarea")).some((area) => area.value.trim() !== "");
  }

  function applyList(data) {
    document.getElementById("rows").innerHTML = data.rows;
    document.getElementById("attention").innerHTML = data.attention;
  }

  function applySaga(data) {
    if (data.version === body.dataset.version) {
      return;
    }
    if (typing()) {
      say("this saga changed: reload to see it", false);
      return;
    }
    window.location.reload();
  }

  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
      const data = await response.json();
      if (!response.ok) {
        say(data.error || "the console answered " + response.status, true);
      } else {
        (body.dataset.page === "list" ? applyList : applySaga)(data);
        say("live · " + new Date().toLocaleTimeString(), false);
      }
    } catch (error) {
      say("the console does not answer: " + error.message, true);
    }
    window.setTimeout(poll, every);
  }

  window.setTimeout(poll, every);
})();
