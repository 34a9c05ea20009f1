/* SLA clocks: every element with data-due (ISO time) counts down, and turns "overdue" when it passes. With
   business hours the server gives the working minutes left (data-working) and whether the clock runs now
   (data-running); the count goes down only while it runs. data-plain: just the time, no "left". */
(function () {
  "use strict";
  function duration(m) { return m >= 60 ? Math.floor(m / 60) + " h " + (m % 60) + " min" : m + " min"; }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left, working = el.dataset.working !== undefined;
      if (working) {
        el._shown = el._shown || now;
        left = parseInt(el.dataset.working, 10) - (el.dataset.running === "1" ? Math.floor((now - el._shown) / 60000) : 0);
      } else {
        left = Math.round((Date.parse(el.dataset.due) - now) / 60000);
      }
      var late = left < 0, text = duration(Math.abs(left));
      if (el.dataset.plain !== undefined) el.textContent = late ? "no time" : text;
      else if (working) el.textContent = late ? "overdue " + text + " of working time" : text + " of working time left" + (el.dataset.running === "1" ? "" : " (paused outside working hours)");
      else el.textContent = late ? "overdue " + text : text + " left";
      el.classList.toggle("overdue", late);
      el.classList.toggle("due-soon", !late && left < 15);
    });
  }
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSwap", tick);
  document.addEventListener("htmx:oobAfterSwap", tick);
  setInterval(tick, 15000);
})();
