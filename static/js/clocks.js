/* SLA clocks: every element with data-due (ISO time) counts down, and turns "overdue" when it passes. */
(function () {
  "use strict";
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left = Math.round((Date.parse(el.dataset.due) - now) / 60000);
      var late = left < 0, m = Math.abs(left), text = m >= 60 ? Math.floor(m / 60) + " h " + (m % 60) + " min" : m + " min";
      el.textContent = late ? "overdue " + text : text + " left";
      el.classList.toggle("overdue", late);
      el.classList.toggle("due-soon", !late && left < 15);
    });
  }
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSwap", tick);
  setInterval(tick, 15000);
})();
