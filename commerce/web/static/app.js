// Countdowns (synced to server time), the drop page's live stock, CSRF token, who is signed
// in (and their holds, pushed privately over the stream) and the PWA.
(() => {
  "use strict";
  const pad = (n) => String(n).padStart(2, "0");
  const fmt = (ms) => {
    const s = Math.max(0, Math.ceil(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s % 60);
  };
  let offset = 0;
  const clocks = document.querySelectorAll("[data-deadline]");
  clocks.forEach((el) => {
    if (el.dataset.serverTime) offset = Date.parse(el.dataset.serverTime) - Date.now();
  });
  const tick = () => {
    const now = Date.now() + offset;
    clocks.forEach((el) => {
      const left = Date.parse(el.dataset.deadline) - now;
      if (left > 0) { el.textContent = fmt(left); return; }
      if (el.dataset.reload) { if (!el.dataset.done) { el.dataset.done = "1"; setTimeout(() => location.reload(), 500); } return; }
      el.textContent = el.dataset.expired || "0:00";
      document.querySelectorAll("form.pay button").forEach((b) => { b.disabled = true; });
    });
  };
  if (clocks.length) { tick(); setInterval(tick, 250); }

  // A ship hold: shipping and total follow the chosen country (the server sent the rates,
  // already formatted: code, or "*" for every other country, → [shipping, total]).
  const ship = document.querySelector("[data-ship-rates]");
  if (ship) {
    const rates = JSON.parse(ship.dataset.shipRates);
    const country = ship.querySelector("select[name=country]");
    const reprice = () => {
      const [cost, total] = rates[country.value] || rates[country.value ? "*" : ""] || rates[""];
      document.querySelectorAll("[data-ship-amount]").forEach((el) => { el.textContent = cost; });
      document.querySelectorAll("[data-ship-total]").forEach((el) => { el.textContent = total; });
    };
    country.addEventListener("change", reprice);
    reprice();
  }

  const drop = document.body.dataset.drop;
  if (!drop) return;
  const form = document.querySelector("form.claim");
  if (form) {
    fetch("/api/csrf", { credentials: "same-origin", cache: "no-store" })
      .then((r) => r.json()).then((j) => { form.elements.csrf.value = j.token; }).catch(() => {});
  }
  // Signed in (Twitch / Discord / a proven email): who, and this person's hold with its pay
  // link. /api/me is per person, so the cached page asks for it.
  const me = document.querySelector("form[data-me]");
  const holds = document.querySelector("[data-holds]");
  const note = (text, link) => {
    if (!holds) return;
    const li = document.createElement("li");
    if (text) { const p = document.createElement("span"); p.textContent = text + " "; li.append(p); }
    if (link) { const a = document.createElement("a"); a.href = link; a.className = "button"; a.textContent = "Pay now"; a.dataset.payLink = ""; li.append(a); }
    holds.querySelector("[data-hold-list]").prepend(li);
    holds.hidden = false;
  };
  fetch("/api/me?drop=" + drop, { credentials: "same-origin", cache: "no-store" })
    .then((r) => r.json()).then((j) => {
      if (!j.signed_in) return;
      document.querySelectorAll("[data-signin-choices]").forEach((el) => { el.hidden = true; });
      document.querySelectorAll("[data-email]").forEach((el) => { el.hidden = true; el.querySelector("input").required = false; });
      if (me) {
        me.hidden = false;
        me.querySelector("[data-me-names]").textContent = j.names.map((n) => n.name + " (" + n.platform + ")").join(", ");
        me.elements.csrf.value = j.signout_csrf;
      }
      j.holds.forEach((h) => note("You hold one: pay before it runs out.", h.link));
      (j.orders || []).forEach((o) => {
        if (!holds) return;
        const li = document.createElement("li");
        li.dataset.order = o.order_id;
        li.textContent = o.text;
        holds.querySelector("[data-hold-list]").append(li);
        holds.hidden = false;
      });
    }).catch(() => {});
  const set = (name, fn) => document.querySelectorAll('[data-live="' + name + '"]').forEach(fn);
  const labels = JSON.parse(document.body.dataset.claimLabels || "{}");
  // Every event of the stream carries the server's time (the page, cached, cannot).
  const sync = (d) => { if (d.server_time) offset = Date.parse(d.server_time) - Date.now(); };
  const stock = (d) => {
    sync(d);
    set("bar", (el) => { el.max = d.total; el.value = d.available; });
  };
  // The server words every state (commerce.views.drop_status); the page only shows them.
  const status = (d) => {
    document.body.dataset.phase = d.phase;
    set("headline", (el) => { el.textContent = d.headline; });
    set("detail", (el) => { el.textContent = d.detail; });
    set("bar", (el) => { el.max = d.total; el.value = d.available; el.hidden = !(d.phase === "live" || d.phase === "sold_out"); });
    if (form) {
      form.hidden = d.action === "none";
      const button = form.querySelector("button");
      button.textContent = labels[d.action] || button.textContent;
      button.disabled = d.action === "remind";
    }
    if (d.phase === "closed") set("deadline", (el) => { el.hidden = true; });
  };
  const connect = (delay) => {
    const es = new EventSource("/api/drops/" + drop + "/stream");
    es.addEventListener("stock", (e) => stock(JSON.parse(e.data)));
    es.addEventListener("countdown", (e) => sync(JSON.parse(e.data)));
    es.addEventListener("status", (e) => status(JSON.parse(e.data)));
    es.addEventListener("private", (e) => { const d = JSON.parse(e.data); note(d.text, d.link); });
    es.onopen = () => { delay = 1000; };
    es.onerror = () => { if (es.readyState === 2) { setTimeout(() => connect(Math.min(delay * 2, 30000)), delay); } };
  };
  connect(1000);
  const sw = document.body.dataset.sw;
  if (sw && "serviceWorker" in navigator) navigator.serviceWorker.register(sw).catch(() => {});
})();
