// <dropcast-drop drop="ID"> for any website: the drop's title, price (in the visitor's
// locale), countdown (on the server's clock), live stock and a Claim button that opens the
// drop page in a popup, where the viewer signs in and claims first-party (never a
// third-party cookie). Read-only across origins: this script only GETs the drop's JSON and
// its event stream. No framework, no inline script or style (the host page's CSP may
// forbid them): styles go in through a constructed stylesheet.
const ORIGIN = new URL(import.meta.url).origin;
const PARTS = ["title", "price", "countdown", "stock", "claim"];
const LABELS = { claim: "Claim", waitlist: "Join the waitlist", remind: "Opens soon" };
const CSS = `
:host{--dropcast-bg:#fff;--dropcast-fg:#111;--dropcast-muted:#666;--dropcast-accent:#e8452c;
--dropcast-accent-fg:#fff;--dropcast-radius:14px;--dropcast-font:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
display:block;max-width:24rem}
:host([theme=dark]){--dropcast-bg:#16161a;--dropcast-fg:#f4f4f5;--dropcast-muted:#a1a1aa}
:host([hidden]){display:none}
.card{background:var(--dropcast-bg);color:var(--dropcast-fg);font:15px/1.45 var(--dropcast-font);
border-radius:var(--dropcast-radius);padding:1rem 1.2rem;box-shadow:0 1px 4px #0003}
.title{font-size:1.2rem;font-weight:700;margin:0 0 .2rem}
.price{font-size:1.1rem;font-weight:600}
.headline{font-weight:700}
.detail,.muted{color:var(--dropcast-muted)}
.countdown{font-size:1.6rem;font-weight:700;font-variant-numeric:tabular-nums}
progress{width:100%;height:.8rem;accent-color:var(--dropcast-accent)}
a.claim{display:inline-block;margin-top:.6rem;background:var(--dropcast-accent);color:var(--dropcast-accent-fg);
border-radius:calc(var(--dropcast-radius) * .7);padding:.65rem 1.2rem;font-weight:600;text-decoration:none}
a.claim[aria-disabled=true]{opacity:.45;pointer-events:none}
[hidden]{display:none!important}
[data-phase=sold_out] .headline,[data-phase=closed] .headline{color:var(--dropcast-accent)}
`;
const TEMPLATE = `
<div class="card" part="card" data-phase="">
<div class="title" part="title" data-part="title"></div>
<div class="price" part="price" data-part="price"></div>
<div><span class="headline" part="headline"></span> <span class="detail" part="detail"></span></div>
<div class="countdown" part="countdown" data-part="countdown"></div>
<progress part="stock" data-part="stock" max="1" value="0"></progress>
<a class="claim" part="claim" data-part="claim" target="_blank" rel="noopener"></a>
</div>`;

let sheet = null;
const styles = (root) => {
  if ("adoptedStyleSheets" in root && typeof CSSStyleSheet.prototype.replaceSync === "function") {
    sheet = sheet || new CSSStyleSheet();
    if (!sheet.cssRules.length) sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    const style = document.createElement("style");
    style.textContent = CSS;
    root.append(style);
  }
};
const pad = (n) => String(n).padStart(2, "0");
const clock = (ms) => {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s % 60);
};
// The amount in the visitor's locale: Intl knows each currency's minor digits.
const money = (minor, currency, locale) => {
  if (minor == null || !currency) return "";
  try {
    const format = new Intl.NumberFormat(locale, { style: "currency", currency });
    return format.format(minor / 10 ** format.resolvedOptions().maximumFractionDigits);
  } catch (e) {
    return "";
  }
};

class DropcastDrop extends HTMLElement {
  static get observedAttributes() { return ["drop", "parts", "theme", "lang"]; }

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = TEMPLATE;
    styles(root);
    this.$ = (selector) => root.querySelector(selector);
    this.offset = 0; // server time minus this browser's time
    this.state = null;
    this.timer = 0;
    this.stream = null;
    this.retry = 1000;
    this.$("a.claim").addEventListener("click", (event) => this.claim(event));
  }

  connectedCallback() { this.start(); }

  disconnectedCallback() { this.stop(); }

  attributeChangedCallback(name, before, after) {
    if (before === after || !this.isConnected) return;
    if (name === "drop") this.start();
    else this.render();
  }

  get dropId() {
    const id = (this.getAttribute("drop") || "").trim();
    return /^\d{1,18}$/.test(id) ? id : null;
  }

  get parts() {
    const asked = (this.getAttribute("parts") || "").split(",").map((p) => p.trim()).filter(Boolean);
    return new Set(asked.length ? asked : PARTS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = 0;
    if (this.stream) this.stream.close();
    this.stream = null;
  }

  start() {
    this.stop();
    const id = this.dropId;
    if (id === null) return this.fail("dropcast: the drop attribute must be a drop id");
    const url = ORIGIN + "/api/drops/" + id;
    this.$("a.claim").href = ORIGIN + "/d/" + id;
    fetch(url, { mode: "cors", credentials: "omit" })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status))))
      .then((data) => {
        if (this.dropId !== id) return; // the attribute changed meanwhile
        this.sync(data.server_time);
        this.state = data;
        this.status(data.status);
        this.connect(id);
        this.timer = setInterval(() => this.tick(), 250);
      })
      .catch(() => this.fail("This drop is not available."));
  }

  fail(message) {
    this.state = null;
    this.$(".card").dataset.phase = "error";
    this.$(".headline").textContent = message;
    for (const part of PARTS) this.$('[data-part="' + part + '"]').hidden = true;
  }

  connect(id) {
    // Cross-origin and without credentials: the public stream only.
    const stream = new EventSource(ORIGIN + "/api/drops/" + id + "/stream");
    this.stream = stream;
    const on = (name, fn) => stream.addEventListener(name, (e) => fn(JSON.parse(e.data)));
    on("countdown", (d) => {
      this.sync(d.server_time);
      if (!this.state) return;
      if ("opens_at" in d) this.state.opens_at = d.opens_at;
      if ("closes_at" in d) this.state.closes_at = d.closes_at;
      if (d.state) this.state.state = d.state;
    });
    on("stock", (d) => {
      this.sync(d.server_time);
      this.bar(d.available, d.total);
    });
    on("status", (d) => this.status(d));
    stream.onopen = () => { this.retry = 1000; };
    // EventSource retries by itself; when the browser gave up (server down), start over.
    stream.onerror = () => {
      if (stream.readyState !== 2 || this.stream !== stream) return;
      setTimeout(() => { if (this.stream === stream) this.connect(id); }, this.retry);
      this.retry = Math.min(this.retry * 2, 30000);
    };
  }

  sync(serverTime) {
    if (serverTime) this.offset = Date.parse(serverTime) - Date.now();
  }

  status(d) {
    if (!this.state || !d) return;
    this.state.status = d;
    this.render();
  }

  bar(available, total) {
    const bar = this.$("progress");
    bar.max = Math.max(total, 1);
    bar.value = available;
  }

  render() {
    const data = this.state;
    if (!data) return;
    const parts = this.parts, status = data.status;
    const locale = this.getAttribute("lang") || navigator.language;
    const price = money(data.price_minor, data.currency, locale) || data.price || "";
    this.$(".card").dataset.phase = status.phase;
    this.$(".title").textContent = data.title;
    this.$(".price").textContent = price;
    this.$(".headline").textContent = status.headline;
    this.$(".detail").textContent = status.detail;
    this.bar(status.available, status.total);
    const claim = this.$("a.claim");
    claim.textContent = LABELS[status.action] || "";
    claim.setAttribute("aria-disabled", String(status.action === "remind"));
    const shown = {
      title: parts.has("title"),
      price: parts.has("price") && Boolean(price),
      countdown: parts.has("countdown"),
      stock: parts.has("stock") && (status.phase === "live" || status.phase === "sold_out"),
      claim: parts.has("claim") && status.action !== "none",
    };
    for (const part of PARTS) this.$('[data-part="' + part + '"]').hidden = !shown[part];
    this.tick();
  }

  tick() {
    const data = this.state;
    if (!data) return;
    const now = Date.now() + this.offset, phase = data.status.phase;
    const el = this.$(".countdown");
    let text = "";
    if (phase === "scheduled" && data.opens_at) text = "Starts in " + clock(Date.parse(data.opens_at) - now);
    else if (phase === "live" && data.closes_at) text = "Ends in " + clock(Date.parse(data.closes_at) - now);
    el.textContent = text;
    el.dataset.empty = String(!text);
  }

  claim(event) {
    // A popup on the shop's own origin: sign-in and claim happen there, first-party.
    const id = this.dropId;
    if (id === null) return;
    event.preventDefault();
    const features = "popup=yes,width=480,height=760,noopener,noreferrer";
    window.open(ORIGIN + "/d/" + id, "_blank", features);
  }
}

if (!customElements.get("dropcast-drop")) customElements.define("dropcast-drop", DropcastDrop);
