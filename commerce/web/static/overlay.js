// OBS overlay: the drop's headline (worded by the server), countdown and stock bar;
// reconnects whenever the server restarts.
(() => {
  "use strict";
  const body = document.body;
  const drop = body.dataset.drop;
  const $ = (name) => document.querySelector('[data-live="' + name + '"]');
  let offset = Date.parse(body.dataset.serverTime) - Date.now();
  const opens = body.dataset.opens ? Date.parse(body.dataset.opens) : null;
  const closes = body.dataset.closes ? Date.parse(body.dataset.closes) : null;
  const pad = (n) => String(n).padStart(2, "0");
  const fmt = (ms) => { const s = Math.max(0, Math.ceil(ms / 1000)); return Math.floor(s / 60) + ":" + pad(s % 60); };
  const tick = () => {
    const el = $("countdown");
    if (!el) return;
    const now = Date.now() + offset, phase = body.dataset.phase;
    if (phase === "scheduled" && opens) el.textContent = "Starts in " + fmt(opens - now);
    else if ((phase === "live" || phase === "sold_out") && closes) el.textContent = "Ends in " + fmt(closes - now);
    else el.textContent = "";
  };
  const bar = (d) => { const b = $("bar"); if (b) { b.max = d.total; b.value = d.available; } };
  const status = (d) => {
    body.dataset.phase = d.phase;
    const headline = $("headline"), stock = $("stock"), left = $("left");
    if (headline) headline.textContent = d.headline;
    if (stock) stock.hidden = d.phase !== "live";
    if (left) left.textContent = d.phase === "live" ? d.detail : "";
    bar(d);
    tick();
  };
  const sync = (d) => { if (d.server_time) offset = Date.parse(d.server_time) - Date.now(); };
  const connect = (delay) => {
    const es = new EventSource("/api/drops/" + drop + "/stream");
    es.addEventListener("stock", (e) => { const d = JSON.parse(e.data); sync(d); bar(d); });
    es.addEventListener("status", (e) => status(JSON.parse(e.data)));
    es.addEventListener("countdown", (e) => sync(JSON.parse(e.data)));
    es.onopen = () => { delay = 1000; };
    // EventSource retries by itself; if the browser gave up (server down), start over.
    es.onerror = () => { if (es.readyState === 2) setTimeout(() => connect(Math.min(delay * 2, 15000)), delay); };
  };
  tick();
  setInterval(tick, 250);
  connect(1000);
})();
