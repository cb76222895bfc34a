// Admin dashboard: stock straight from the drop's SSE stream; every other KPI re-fetched
// from /api/drops/{id}/kpis after a tick, at most once every 2 s (the cookie authenticates),
// as the text the server made of it (dashboard.shown).
(() => {
  "use strict";
  const body = document.body;
  const drop = body.dataset.drop;
  if (!drop || body.dataset.live !== "yes") return; // a closed drop does not change
  const MIN_GAP = 2000;
  const all = (sel) => Array.from(document.querySelectorAll(sel));

  const stock = (d) => {
    for (const el of all("[data-stock]")) {
      const v = d[el.dataset.stock];
      if (typeof v === "number") el.textContent = String(v);
    }
    const bar = document.querySelector("[data-stock-bar]");
    if (bar && typeof d.total === "number") { bar.max = d.total; bar.value = d.sold; }
  };

  const kpis = (data) => {
    // The server formats every value (commerce.analytics.metrics): the page only places it.
    const shown = (data.dashboard && data.dashboard.shown) || {};
    for (const el of all("[data-kpi]")) {
      const text = shown[el.dataset.kpi];
      if (typeof text === "string") el.textContent = text;
    }
    const verdict = data.dashboard && data.dashboard.verdict;
    const box = document.querySelector("[data-objective]");
    if (verdict && box) {
      box.className = box.className.replace(/\btone-[\w-]+/, "tone-" + verdict.tone);
      for (const el of all("[data-verdict]")) el.textContent = verdict[el.dataset.verdict] || "";
    }
  };

  // Throttled re-fetch: one request in flight, at least MIN_GAP apart, never dropping a tick.
  let last = 0, timer = null, busy = false, again = false;
  const refresh = async () => {
    timer = null;
    if (busy) { again = true; return; }
    busy = true; again = false; last = Date.now();
    try {
      const r = await fetch("/api/drops/" + drop + "/kpis", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (r.ok) kpis(await r.json());
      else if (r.status === 401) setConn("signed out: reload to sign in", true);
    } catch (e) { /* offline for a moment: the next tick retries */ }
    busy = false;
    if (again) schedule();
  };
  const schedule = () => {
    if (busy) { again = true; return; }
    if (timer === null) timer = setTimeout(refresh, Math.max(0, last + MIN_GAP - Date.now()));
  };

  const conn = document.querySelector("[data-conn]");
  const setConn = (text, bad) => { if (conn) { conn.textContent = text; conn.classList.toggle("dash-bad", !!bad); } };
  const state = (s) => { for (const el of all('[data-kpi="drop.state"]')) el.textContent = s; };

  let first = true;
  const connect = (delay) => {
    const es = new EventSource("/api/drops/" + drop + "/stream");
    es.addEventListener("stock", (e) => {
      stock(JSON.parse(e.data));
      if (first) first = false; else schedule(); // the first one is the snapshot we render
    });
    es.addEventListener("countdown", (e) => { const d = JSON.parse(e.data); if (d.state) state(d.state); if (d.at) schedule(); });
    es.addEventListener("sold_out", schedule);
    es.addEventListener("restocked", schedule);
    es.addEventListener("closed", () => { state("closed"); schedule(); });
    es.onopen = () => { delay = 1000; setConn("live"); };
    es.onerror = () => {
      setConn("reconnecting…", true);
      if (es.readyState === 2) setTimeout(() => connect(Math.min(delay * 2, 15000)), delay);
    };
  };
  last = Date.now(); // the page itself was rendered just now
  connect(1000);
})();
