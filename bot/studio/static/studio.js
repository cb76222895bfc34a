"use strict";
(() => {
  const log = document.getElementById("log");
  const form = document.getElementById("say");
  const nameInput = document.getElementById("name");
  const creator = document.getElementById("creator");
  const signin = document.getElementById("signin");
  const text = document.getElementById("text");
  const nodes = new Map();
  const bar = document.getElementById("status");
  const ACTIONS = {
    claim: ["Buy", "!buy"],
    waitlist: ["Join waitlist", "!waitlist"],
    remind: ["Remind me", "!remindme drop"],
  };
  let ws = null;
  let stopped = false;  // the server said this tab cannot chat: do not reconnect
  let warned = false;  // said once that the chat cannot be joined

  // The drop's one headline and action, exactly as the drop page and the overlay show it.
  function showStatus(m) {
    const s = m.status;
    if (!s) return;
    bar.hidden = false;
    bar.dataset.phase = s.phase;
    bar.dataset.drop = m.drop_id == null ? "" : String(m.drop_id);
    bar.querySelector(".headline").textContent = s.headline;
    bar.querySelector(".title").textContent = m.title || "";
    bar.querySelector(".detail").textContent = s.detail;
    const button = bar.querySelector(".action");
    const action = ACTIONS[s.action];
    button.hidden = !action;
    if (action) { button.textContent = action[0]; button.dataset.command = action[1]; }
  }

  function when(iso) {
    const at = new Date(iso);
    const s = Math.round((at - Date.now()) / 1000);
    const abs = Math.abs(s);
    const span = abs < 60 ? abs + " s" : abs < 3600 ? Math.round(abs / 60) + " min" : Math.round(abs / 3600) + " h";
    return (s >= 0 ? "in " + span : span + " ago") + " (" + at.toLocaleTimeString() + ")";
  }

  function render(node, m) {
    if (node.ticking) { clearInterval(node.ticking); node.ticking = null; }
    node.textContent = "";
    node.className = "line bot " + (m.kind || "") + (m.private ? " private" : "");
    node.dataset.kind = m.kind || "";
    const body = document.createElement("div");
    body.className = "text";
    const fill = () => { body.textContent = m.at ? m.text.replace("{at}", when(m.at)) : m.text; };
    fill();
    if (m.at) node.ticking = setInterval(fill, 1000);
    node.appendChild(body);
    if (m.fields && m.fields.length) {
      const f = document.createElement("div");
      f.className = "fields";
      f.textContent = m.fields.map(([k, v]) => k + ": " + v).join(" · ");
      node.appendChild(f);
    }
    if (m.link) {
      const a = document.createElement("a");
      a.className = "pay"; a.href = m.link; a.target = "_blank"; a.rel = "noopener";
      a.textContent = "Pay now (your personal link)";
      node.appendChild(a);
    } else if (m.page) {
      const a = document.createElement("a");
      a.href = m.page; a.target = "_blank"; a.rel = "noopener"; a.textContent = "drop page";
      node.appendChild(document.createTextNode(" "));
      node.appendChild(a);
    }
    for (const b of m.buttons || []) {
      const btn = document.createElement("button");
      btn.type = "button";
      btn.textContent = { buy: "Buy", waitlist: "Join waitlist", remind: "Remind me" }[b] || b;
      btn.dataset.command = { buy: "!buy", waitlist: "!waitlist", remind: "!remindme" }[b] || "";
      btn.addEventListener("click", () => send(btn.dataset.command));
      node.appendChild(btn);
    }
  }

  function add(m) {
    showStatus(m);
    if (m.op === "edit" && nodes.has(m.id)) { render(nodes.get(m.id), m); return; }
    const node = document.createElement("div");
    if (m.op === "chat") {
      node.className = "line chat";
      const who = document.createElement("span");
      who.className = "who"; who.textContent = m.name + (m.creator ? " (creator)" : "");
      node.appendChild(who);
      node.appendChild(document.createTextNode(m.text));
    } else if (m.op === "error") {
      node.className = "line bot error"; node.textContent = m.text;
      if (m.link) {
        const a = document.createElement("a");
        a.href = m.link; a.textContent = "sign in";
        node.appendChild(document.createTextNode(" "));
        node.appendChild(a);
      }
      if (m.fatal) stopped = true;
    } else {
      render(node, m);
    }
    if (m.id) nodes.set(m.id, node);
    log.appendChild(node);
    log.scrollTop = log.scrollHeight;
  }

  // Who this tab is, decided by the server when it connected: the admin (signed in at the
  // dashboard) may speak as the creator; anyone else is told how to become them.
  function hello(m) {
    creator.closest("label").hidden = !m.creator;
    signin.hidden = m.creator;
    if (m.signin) signin.querySelector("a").href = m.signin;
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let opened = false;
    ws = new WebSocket(proto + "//" + location.host + "/studio/ws");
    ws.addEventListener("open", () => { opened = true; });
    ws.addEventListener("message", (e) => {
      const m = JSON.parse(e.data);
      if (m.op === "hello") hello(m); else add(m);
    });
    ws.addEventListener("close", () => {
      if (stopped) return;
      if (!opened && !warned) {  // dropcast is down, or this is not its public address
        warned = true;
        add({ op: "error", text: "Cannot join the studio chat: is dropcast running? Open the studio at the address it printed. Retrying…" });
      }
      if (opened) warned = false;
      setTimeout(connect, opened ? 1000 : 5000);
    });
  }

  function send(line) {
    if (!line || !ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({
      name: nameInput.value, creator: creator.checked, text: line, locale: navigator.language,
    }));
  }

  bar.querySelector(".action").addEventListener("click", (e) => send(e.target.dataset.command));

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send(text.value.trim());
    text.value = "";
  });
  connect();
})();
