// OBS overlay: countdown, stock bar, sold-out state; reconnects whenever the server restarts.
(() => {
  "use strict";
  const body = document.body;
  const drop = body.dataset.drop;
  const $ = (name) => document.querySelector('[data-live="' + name + '"]');
  let offset = Date.parse(body.dataset.serverTime) - Date.now();
  let state = body.dataset.state;
  const opens = body.dataset.opens ? Date.parse(body.dataset.opens) : null;
  const closes = body.dataset.closes ? Date.parse(body.dataset.closes) : null;
  const pad = (n) => String(n).padStart(2, "0");
  const fmt = (ms) => { const s = Math.max(0, Math.ceil(ms / 1000)); return Math.floor(s / 60) + ":" + pad(s % 60); };
  const tick = () => {
    const el = $("countdown");
    if (!el) return;
    const now = Date.now() + offset;
    if (state === "scheduled" && opens) el.textContent = "Starts in " + fmt(opens - now);
    else if (state === "live" && closes) el.textContent = "Ends in " + fmt(closes - now);
    else if (state === "live") el.textContent = "LIVE";
    else if (state === "closed") el.textContent = "Closed";
    else el.textContent = "";
  };
  const stock = (d) => {
    const left = $("left"), bar = $("bar"), sold = $("soldout");
    if (left) left.textContent = d.available > 0 ? d.available + " left!" : "0 left";
    if (bar) { bar.max = d.total; bar.value = d.available; }
    if (sold) sold.hidden = d.available > 0;
  };
  const sync = (d) => { if (d.server_time) offset = Date.parse(d.server_time) - Date.now(); };
  const connect = (delay) => {
    const es = new EventSource("/api/drops/" + drop + "/stream");
    es.addEventListener("stock", (e) => { const d = JSON.parse(e.data); sync(d); stock(d); });
    es.addEventListener("sold_out", () => { const s = $("soldout"); if (s) s.hidden = false; });
    es.addEventListener("countdown", (e) => { const d = JSON.parse(e.data); sync(d); if (d.state) state = d.state; tick(); });
    es.addEventListener("closed", () => { state = "closed"; tick(); });
    es.onopen = () => { delay = 1000; };
    // EventSource retries by itself; if the browser gave up (server down), start over.
    es.onerror = () => { if (es.readyState === 2) setTimeout(() => connect(Math.min(delay * 2, 15000)), delay); };
  };
  tick();
  setInterval(tick, 250);
  connect(1000);
})();
