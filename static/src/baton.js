/* Baton tracking snippet. <script src="https://crm.example.com/static/baton.js" data-key="pk_…" defer></script>
   Sends a page_view on load; window.baton.identify(email, fields) and window.baton.track(type, properties).
   Events wait in localStorage until the server confirms them (ids make resends safe); never throws. Forms
   posting to Baton's hosted forms (/f/<slug>) get the visitor id as their _visitor field.
   This is the source: /static/baton.js is it minified (manage.py build_snippet; a test keeps them equal). */
(function (w, d) {
  "use strict";
  try {
    var s = d.currentScript, key = s && s.getAttribute("data-key");
    if (!key || w.baton) return;
    var origin = new URL(s.src).origin, url = origin + "/api/v1/collect?key=" + encodeURIComponent(key);
    var STORE = "baton_queue", queue = [], timer = 0, wait = 1000, busy = false;
    var uid = function () {
      return w.crypto && crypto.randomUUID ? crypto.randomUUID() : Date.now().toString(36) + Math.random().toString(36).slice(2);
    };
    var m = d.cookie.match(/(?:^|; )baton_vid=([\w-]{1,64})/), vid = m ? m[1] : uid();
    d.cookie = "baton_vid=" + vid + "; path=/; max-age=31536000; SameSite=Lax";
    try { queue = JSON.parse(localStorage.getItem(STORE)) || []; } catch (e) { queue = []; }
    var save = function () {
      try { localStorage.setItem(STORE, JSON.stringify(queue.slice(-500))); } catch (e) { /* private mode */ }
    };
    var later = function (ms) { if (!timer) timer = setTimeout(flush, ms); };
    var flush = function () {
      timer = 0;
      if (busy || !queue.length) return;
      var batch = queue.slice(0, 100), ids = batch.map(function (e) { return e.id; });
      busy = true;
      fetch(url, { method: "POST", body: JSON.stringify({ events: batch }), keepalive: true, credentials: "omit",
                   headers: { "Content-Type": "text/plain" } })
        .then(function (r) {
          if (r.status === 429 || r.status >= 500) throw r.status;
          // Delivered (or refused for good: a 4xx would be refused again). Either way it leaves the queue.
          queue = queue.filter(function (e) { return ids.indexOf(e.id) < 0; });
          save(); wait = 1000;
        })
        .catch(function () { wait = Math.min(wait * 2, 60000); })
        .then(function () { busy = false; if (queue.length) later(wait === 1000 ? 0 : wait); });
    };
    var push = function (event) {
      event.id = uid(); event.visitor_id = vid; event.occurred_at = new Date().toISOString();
      queue.push(event); save(); later(300);
    };
    var guard = function (fn) {
      return function () { try { fn.apply(null, arguments); } catch (e) { /* never break the host page */ } };
    };
    w.baton = {
      track: guard(function (type, properties) { push({ type: String(type), properties: properties || {} }); }),
      identify: guard(function (email, fields) {
        var e = { type: "identify", email: String(email) };
        if (fields) e.contact = fields;
        push(e);
      }),
      visitorId: vid
    };
    var props = { url: location.href, path: location.pathname, title: d.title, referrer: d.referrer };
    new URLSearchParams(location.search).forEach(function (v, k) { if (/^utm_/.test(k)) props[k] = v; });
    w.baton.track("page_view", props);
    // A hosted form learns who is submitting it: its earlier visits join the contact.
    d.addEventListener("submit", guard(function (e) {
      var f = e.target, a = f && f.action;
      if (!a || a.indexOf(origin + "/f/") !== 0 || f.elements._visitor) return;
      var input = d.createElement("input");
      input.type = "hidden"; input.name = "_visitor"; input.value = vid;
      f.appendChild(input);
    }), true);
    // Leaving the page: hand what is queued to the browser; it stays queued until a confirmed send.
    w.addEventListener("pagehide", guard(function () {
      if (queue.length && navigator.sendBeacon) navigator.sendBeacon(url, JSON.stringify({ events: queue.slice(0, 100) }));
    }));
  } catch (e) { /* never break the host page */ }
})(window, document);
