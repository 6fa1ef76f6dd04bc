/* TPP quota ledger dashboard: one page, vanilla JS, no build step, nothing from another host.
 *
 * The API key lives in sessionStorage only (never in a URL, a cookie or localStorage) and is
 * sent as `Authorization: Bearer` to this origin's /v1 API. Every figure shown is the API's,
 * formatted with thousands separators; the only arithmetic on TPP here is turning figures into
 * pixel positions (bar widths as a percentage of cap, chart coordinates).
 */
"use strict";

(function () {
  const KEY_SLOT = "tpp-ledger.api-key";
  const NUMBER = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const THRESHOLDS = [80, 95];
  const state = { role: null, can: {}, tab: null, operator: null };

  // -- small DOM helpers (text only: API strings never become HTML) ------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name === "style") {  // through the CSSOM: the page's CSP refuses style attributes
        for (const rule of String(value).split(";")) {
          const [prop, val] = rule.split(":");
          if (prop && val) node.style.setProperty(prop.trim(), val.trim());
        }
      }
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) if (child) node.append(child);
    return node;
  }
  const $ = (sel, root) => (root || document).querySelector(sel);
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

  function tpp(n) {
    if (n === null || n === undefined) return "—";
    return typeof n === "number" ? NUMBER.format(n) : String(n);
  }
  function when(iso) {
    if (!iso) return "—";
    return String(iso).replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC");
  }
  function short(hash) { return hash ? `${hash.slice(0, 12)}…` : "—"; }
  function hashCell(hash) {
    return el("code", { class: "hash", title: hash || "", "aria-label": hash || "none" },
      short(hash));
  }
  function toIso(localValue) {  // a datetime-local field's value, read as local time, to UTC
    return localValue ? new Date(localValue).toISOString() : null;
  }
  function localValue(date) {  // a Date as a datetime-local value (local time, minutes)
    const pad = (v) => String(v).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
      `T${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }
  function query(params) {
    const qs = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== null && value !== undefined && value !== "") qs.set(name, value);
    }
    const text = qs.toString();
    return text ? `?${text}` : "";
  }
  function newIdempotencyKey() {  // works outside secure contexts too (plain http on a LAN)
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return "dash-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // -- the API -------------------------------------------------------------------------------
  class SignedOut extends Error {}

  async function api(path, options) {
    const key = sessionStorage.getItem(KEY_SLOT);
    if (!key) throw new SignedOut("not signed in");
    const opts = options || {};
    const headers = { Authorization: `Bearer ${key}`, Accept: "application/json" };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    Object.assign(headers, opts.headers || {});
    let response;
    try {
      response = await fetch(path, {
        method: opts.method || "GET", headers, cache: "no-store", credentials: "omit",
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      });
    } catch (err) {
      return { status: 0, body: { title: "Network error", detail: String(err) } };
    }
    let body = null;
    const text = await response.text();
    if (text) { try { body = JSON.parse(text); } catch (_) { body = { detail: text }; } }
    if (response.status === 401 && !opts.probe) {
      signOut(`The service refused the key (401: ${(body && body.detail) || "unauthorized"}). ` +
        "Sign in again with a valid key.");
      throw new SignedOut("401");
    }
    return { status: response.status, body };
  }

  function problemText(result) {
    const b = result.body || {};
    const where = b.field ? ` (field: ${b.field})` : "";
    return `${result.status || "error"} ${b.title || ""}: ${b.detail || "no detail"}${where}`;
  }
  function showMessage(node, kind, text) {
    node.hidden = false;
    node.className = `message ${kind}`;
    node.textContent = text;
  }
  function hideMessage(node) { node.hidden = true; node.textContent = ""; }

  // -- sign in / out and what the key may do --------------------------------------------------
  async function probe(path) {
    const r = await api(path, { probe: true });
    return r.status;
  }

  async function signIn(key) {
    sessionStorage.setItem(KEY_SLOT, key);
    const message = $("#sign-in-message");
    hideMessage(message);
    let policy;
    try {
      policy = await api("/v1/policy", { probe: true });
    } catch (err) {
      return;
    }
    if (policy.status === 401) {
      sessionStorage.removeItem(KEY_SLOT);
      showMessage(message, "error",
        `That key was refused (401: ${(policy.body && policy.body.detail) || "unknown key"}).`);
      return;
    }
    if (policy.status !== 200) {
      sessionStorage.removeItem(KEY_SLOT);
      showMessage(message, "error", `Could not sign in: ${problemText(policy)}`);
      return;
    }
    // What the key may do, asked of the API itself (a 403 hides the page that would get it).
    const [keys, reservations, entries, runs, operators] = await Promise.all([
      probe("/v1/keys?limit=1"), probe("/v1/reservations?limit=1"),
      probe("/v1/entries?limit=1"), probe("/v1/jobs/runs?limit=1"),
      api("/v1/operators?limit=2", { probe: true }),
    ]);
    let role = "auditor";
    if (keys === 200) role = "admin";
    else if (reservations === 200 && entries !== 200) role = "vendor";
    else if (entries === 200 && reservations !== 200) role = "operator";
    state.role = role;
    state.can = {
      reserve: role === "admin" || role === "vendor",
      evaluate: role !== "operator",
      reservations: reservations === 200,
      history: entries === 200,
      verify: role === "admin" || role === "auditor",
      jobs: runs === 200,
    };
    state.operator = null;
    if (role === "operator" && operators.status === 200 && operators.body.items.length === 1) {
      state.operator = operators.body.items[0].id;
    }
    state.policy = policy.body;
    $("#api-key").value = "";
    showApp();
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY_SLOT);
    state.role = null;
    $("#app").hidden = true;
    $("#who").hidden = true;
    clear($("#panels"));
    clear($("#tabs"));
    $("#sign-in").hidden = false;
    const node = $("#sign-in-message");
    if (message) showMessage(node, "error", message); else hideMessage(node);
    $("#api-key").focus();
  }

  // -- tabs --------------------------------------------------------------------------------
  const TABS = [
    { id: "headroom", title: "Headroom", show: () => true, render: renderHeadroom },
    { id: "usage", title: "Use over time", show: () => state.can.history, render: renderUsage },
    { id: "reservations", title: "Reservations", show: () => state.can.reservations,
      render: renderReservations },
    { id: "history", title: "History", show: () => state.can.history, render: renderHistory },
    { id: "findings", title: "Findings and alerts", show: () => state.can.jobs,
      render: renderFindings },
    { id: "policy", title: "Policy", show: () => true, render: renderPolicy },
  ];

  function showApp() {
    $("#sign-in").hidden = true;
    $("#app").hidden = false;
    $("#who").hidden = false;
    $("#who-role").textContent = state.operator ? `${state.role} · ${state.operator}` : state.role;
    $("#who-policy").textContent =
      `rule set ${state.policy.name} ${state.policy.version}`;
    const tabs = clear($("#tabs"));
    const panels = clear($("#panels"));
    const visible = TABS.filter((t) => t.show());
    for (const tab of visible) {
      tabs.append(el("button", {
        type: "button", role: "tab", id: `tab-${tab.id}`, "aria-controls": `panel-${tab.id}`,
        "aria-selected": "false", tabindex: "-1", onclick: () => selectTab(tab.id),
        onkeydown: (ev) => tabKeys(ev, visible, tab.id),
      }, tab.title));
      const panel = el("section", {
        role: "tabpanel", id: `panel-${tab.id}`, "aria-labelledby": `tab-${tab.id}`,
        class: "panel", hidden: true,
      });
      panels.append(panel);
      tab.render(panel);
    }
    const wanted = location.hash.slice(1);
    selectTab(visible.some((t) => t.id === wanted) ? wanted : visible[0].id);
  }

  function tabKeys(ev, visible, id) {
    const i = visible.findIndex((t) => t.id === id);
    let next = null;
    if (ev.key === "ArrowRight") next = visible[(i + 1) % visible.length];
    if (ev.key === "ArrowLeft") next = visible[(i - 1 + visible.length) % visible.length];
    if (next) { selectTab(next.id); $(`#tab-${next.id}`).focus(); ev.preventDefault(); }
  }

  function selectTab(id) {
    state.tab = id;
    for (const button of document.querySelectorAll("#tabs [role=tab]")) {
      const on = button.id === `tab-${id}`;
      button.setAttribute("aria-selected", on ? "true" : "false");
      button.tabIndex = on ? 0 : -1;
    }
    for (const panel of document.querySelectorAll("#panels [role=tabpanel]")) {
      panel.hidden = panel.id !== `panel-${id}`;
    }
    history.replaceState(null, "", `#${id}`);
  }

  // -- form helpers ----------------------------------------------------------------------------
  function field(label, name, attrs) {
    const id = `f-${Math.random().toString(36).slice(2, 9)}`;
    return el("div", { class: "field" },
      el("label", { for: id }, label),
      el("input", Object.assign({ id, name, spellcheck: "false", autocomplete: "off" }, attrs)));
  }
  function selectField(label, name, options, attrs) {
    const id = `f-${Math.random().toString(36).slice(2, 9)}`;
    return el("div", { class: "field" },
      el("label", { for: id }, label),
      el("select", Object.assign({ id, name }, attrs),
        options.map(([value, text]) => el("option", { value }, text))));
  }
  function values(form) {
    const out = {};
    for (const [name, value] of new FormData(form).entries()) out[name] = String(value).trim();
    return out;
  }
  function table(headers, rows, attrs) {
    return el("div", { class: "table-wrap" },
      el("table", attrs || {},
        el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
        rows instanceof HTMLTableSectionElement ? rows : el("tbody", {}, rows)));
  }
  function status(text, kind) { return el("span", { class: `pill ${kind || text}` }, text); }

  // -- headroom ---------------------------------------------------------------------------------
  function renderHeadroom(panel) {
    const message = el("div", { class: "message", role: "status", hidden: true });
    const out = el("div", { class: "buckets", "aria-live": "polite" });
    const form = el("form", { class: "filters", "aria-label": "Headroom query" },
      field("Country", "country", { required: true, pattern: "[A-Za-z]{2}", maxlength: 2,
        placeholder: "AE", size: 4 }),
      state.role === "operator" ? null : field("Operator", "operator_id", { placeholder: "g42" }),
      field("Consignee", "consignee_id", { placeholder: "g42-abudhabi-1" }),
      el("button", { type: "submit" }, "Show headroom"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const v = values(form);
      hideMessage(message);
      const r = await api(`/v1/headroom${query({ country: v.country.toUpperCase(),
        operator_id: v.operator_id, consignee_id: v.consignee_id })}`);
      clear(out);
      if (r.status !== 200) { showMessage(message, "error", problemText(r)); return; }
      out.append(el("p", { class: "muted" },
        `${r.body.country} · tier ${r.body.tier} · as of ${when(r.body.at)}`));
      if (!r.body.buckets.length) out.append(el("p", {}, "No bucket applies to this query."));
      for (const bucket of r.body.buckets) out.append(bucketBar(bucket));
    });
    panel.append(el("h2", {}, "Headroom"),
      el("p", { class: "muted" }, "Every bucket that applies to a destination, operator and " +
        "consignee: committed, held and available against the cap, with the 80 % and 95 % " +
        "alert thresholds marked."),
      form, message, out);
  }

  function pct(part, cap) {  // for drawing only
    if (!cap || cap <= 0) return 0;
    return Math.max(0, Math.min(100, (part / cap) * 100));
  }

  function bucketBar(b) {
    const id = `${b.kind}:${b.key}`;
    const label = `${b.kind} ${b.key}`;
    const bar = el("div", {
      class: "bar", role: "img",
      "aria-label": `${label}: committed ${tpp(b.committed)}, held ${tpp(b.held)}, ` +
        `available ${tpp(b.available)} of cap ${tpp(b.cap)} TPP`,
    },
      el("span", { class: "seg committed", style: `width:${pct(b.committed, b.cap)}%` }),
      el("span", { class: "seg held", style: `width:${pct(b.held, b.cap)}%` }),
      THRESHOLDS.map((t) => el("span", { class: "mark", style: `left:${t}%`, title: `${t} %` },
        el("span", { class: "mark-label" }, `${t}%`))));
    return el("article", { class: "bucket", "data-bucket": id },
      el("h3", {}, el("span", { class: "kind" }, b.kind), " ", el("code", {}, b.key)),
      bar,
      el("dl", { class: "figures" },
        el("div", {}, el("dt", {}, el("i", { class: "swatch committed" }), "committed"),
          el("dd", { class: "v-committed" }, tpp(b.committed))),
        el("div", {}, el("dt", {}, el("i", { class: "swatch held" }), "held"),
          el("dd", { class: "v-held" }, tpp(b.held))),
        el("div", {}, el("dt", {}, el("i", { class: "swatch available" }), "available"),
          el("dd", { class: "v-available" }, tpp(b.available))),
        el("div", {}, el("dt", {}, "cap"), el("dd", { class: "v-cap" }, tpp(b.cap)))),
      b.cap === 0 ? el("p", { class: "muted" }, "Cap is 0: nothing can be granted here.") : null);
  }

  // -- use over time -------------------------------------------------------------------------------
  function renderUsage(panel) {
    const message = el("div", { class: "message", role: "status", hidden: true });
    const out = el("div", { "aria-live": "polite" });
    const now = new Date();
    const from = new Date(now.getTime() - 24 * 3600 * 1000);
    const bucketSelect = el("select", { name: "bucket", id: "usage-bucket", required: true },
      el("option", { value: "" }, "— find buckets first —"));
    const scope = el("form", { class: "filters", "aria-label": "Bucket scope" },
      field("Country", "country", { pattern: "[A-Za-z]{2}", maxlength: 2, placeholder: "AE",
        size: 4 }),
      state.role === "operator" ? null : field("Operator", "operator_id", {}),
      field("Consignee", "consignee_id", {}),
      el("button", { type: "submit", class: "secondary" }, "Find buckets"));
    const chartForm = el("form", { class: "filters", "aria-label": "Chart" },
      el("div", { class: "field" }, el("label", { for: "usage-bucket" }, "Bucket"), bucketSelect),
      field("From", "from", { type: "datetime-local", required: true, value: localValue(from) }),
      field("To (empty: now)", "to", { type: "datetime-local" }),
      field("Samples", "n", { type: "number", min: 2, max: 60, value: 24, required: true,
        size: 4 }),
      el("button", { type: "submit" }, "Draw"));
    let scopeValues = {};
    scope.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      hideMessage(message);
      scopeValues = values(scope);
      const r = await api(`/v1/balances${query(scopeParams(scopeValues))}`);
      if (r.status !== 200) { showMessage(message, "error", problemText(r)); return; }
      clear(bucketSelect);
      if (!r.body.buckets.length) {
        bucketSelect.append(el("option", { value: "" }, "— no capped bucket drawn on —"));
      }
      for (const b of r.body.buckets) {
        bucketSelect.append(el("option", { value: `${b.kind}|${b.key}` },
          `${b.kind} ${b.key} (${b.period})`));
      }
    });
    chartForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      hideMessage(message);
      const v = values(chartForm);
      if (!v.bucket) { showMessage(message, "error", "Find and choose a bucket first."); return; }
      const [kind, key] = v.bucket.split("|");
      const start = new Date(v.from).getTime();
      const end = v.to ? new Date(v.to).getTime() : Date.now();
      const n = Math.max(2, Math.min(60, parseInt(v.n, 10) || 24));
      if (!(end > start)) { showMessage(message, "error", "“To” must be after “From”."); return; }
      const instants = [];
      for (let i = 0; i < n; i++) {
        instants.push(new Date(start + ((end - start) * i) / (n - 1)).toISOString());
      }
      clear(out).append(el("p", { class: "muted" }, `Reading ${n} instants…`));
      const samples = [];
      for (let i = 0; i < instants.length; i += 6) {  // a few at a time: kind to the throttle
        const batch = await Promise.all(instants.slice(i, i + 6).map((at) =>
          api(`/v1/balances${query(Object.assign(scopeParams(scopeValues), { as_of: at }))}`)));
        for (const r of batch) {
          if (r.status !== 200) { showMessage(message, "error", problemText(r)); clear(out); return; }
          const b = r.body.buckets.find((x) => x.kind === kind && x.key === key);
          samples.push({ as_of: r.body.as_of, bucket: b || null });
        }
      }
      clear(out).append(usageChart(kind, key, samples), usageTable(samples));
    });
    panel.append(el("h2", {}, "Use over time"),
      el("p", { class: "muted" }, "A bucket's committed and held TPP as the balances stood at " +
        "evenly spaced instants (GET /v1/balances?as_of=…), against its cap."),
      scope, chartForm, message, out);
  }
  function scopeParams(v) {
    return { country: (v.country || "").toUpperCase(), operator_id: v.operator_id,
      consignee_id: v.consignee_id };
  }

  function usageChart(kind, key, samples) {
    const W = 1100, H = 320, L = 110, R = 20, T = 20, B = 40;
    const pw = W - L - R, ph = H - T - B;
    // Drawing scale only: the tallest of cap and committed+held over the samples.
    let top = 1;
    for (const s of samples) {
      if (!s.bucket) continue;
      top = Math.max(top, s.bucket.cap, s.bucket.committed + s.bucket.held);
    }
    const x = (i) => L + (samples.length === 1 ? 0 : (pw * i) / (samples.length - 1));
    const y = (v) => T + ph - (ph * v) / top;
    const pts = (f) => samples.map((s, i) => `${x(i)},${y(s.bucket ? f(s.bucket) : 0)}`);
    const area = (upper, lower) => {
      const up = pts(upper), low = pts(lower).reverse();
      return `M${up.join(" L")} L${low.join(" L")} Z`;
    };
    // Lines only where the bucket exists: before its first entry balances know no cap for it.
    // A lone point gets a short tick so that it shows.
    const line = (f) => {
      const runs = [[]];
      samples.forEach((s, i) => {
        if (s.bucket) runs[runs.length - 1].push([x(i), y(f(s.bucket))]);
        else if (runs[runs.length - 1].length) runs.push([]);
      });
      return runs.filter((r) => r.length).map((r) => r.length === 1
        ? `M${r[0][0] - 6},${r[0][1]} h12`
        : `M${r.map((p) => p.join(",")).join(" L")}`).join(" ") || "M0,0";
    };
    const grid = [0, 0.25, 0.5, 0.75, 1].map((f) => svg("g", {},
      svg("line", { x1: L, x2: W - R, y1: y(top * f), y2: y(top * f), class: "grid" }),
      svg("text", { x: L - 8, y: y(top * f) + 4, "text-anchor": "end", class: "axis",
        text: f === 0 ? "0" : "" })));
    const labels = [0, Math.floor((samples.length - 1) / 2), samples.length - 1]
      .map((i) => svg("text", { x: x(i), y: H - 12, "text-anchor": i === 0 ? "start" :
        i === samples.length - 1 ? "end" : "middle", class: "axis", text: when(samples[i].as_of) }));
    const last = samples[samples.length - 1].bucket;
    return el("figure", { class: "chart" },
      svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "usage-caption",
        preserveAspectRatio: "xMidYMid meet" },
        grid,
        svg("path", { d: area((b) => b.committed, () => 0), class: "area committed" }),
        svg("path", { d: area((b) => b.committed + b.held, (b) => b.committed),
          class: "area held" }),
        THRESHOLDS.map((t) => svg("path", { d: line((b) => (b.cap * t) / 100),
          class: `threshold t${t}` })),
        svg("path", { d: line((b) => b.cap), class: "cap" }),
        last && last.cap ? svg("text", { x: L - 8, y: y(last.cap) + 4, "text-anchor": "end",
          class: "axis", text: tpp(last.cap) }) : null,
        labels),
      el("figcaption", { id: "usage-caption" },
        el("strong", {}, `${kind} ${key}`), ": ",
        el("i", { class: "swatch committed" }), " committed, ",
        el("i", { class: "swatch held" }), " held, ",
        el("i", { class: "swatch cap" }), " cap, ",
        el("i", { class: "swatch threshold" }), " 80 % and 95 % of cap. " +
        `Latest (${when(samples[samples.length - 1].as_of)}): ` +
        (last ? `committed ${tpp(last.committed)}, held ${tpp(last.held)}, available ` +
          `${tpp(last.available)} of ${tpp(last.cap)} TPP.` : "not drawn on yet.")));
  }

  function usageTable(samples) {
    return el("details", { class: "data" },
      el("summary", {}, "The figures behind the chart"),
      table(["as of", "period", "cap", "committed", "held", "available"],
        samples.map((s) => el("tr", {},
          el("td", {}, when(s.as_of)),
          el("td", {}, s.bucket ? s.bucket.period : "—"),
          ["cap", "committed", "held", "available"].map((f) =>
            el("td", { class: "num" }, s.bucket ? tpp(s.bucket[f]) : "—"))))));
  }

  // -- reservations -------------------------------------------------------------------------------
  function renderReservations(panel) {
    panel.append(el("h2", {}, "Reservations"));
    if (state.can.reserve || state.can.evaluate) panel.append(reserveForm());
    const message = el("div", { class: "message", role: "status", hidden: true });
    const body = el("tbody", {});
    const more = el("button", { type: "button", class: "secondary", hidden: true }, "More");
    let cursor = null;
    let filters = {};
    const form = el("form", { class: "filters", "aria-label": "Reservation filters" },
      selectField("Status", "status", [["", "any"], ["held", "held"],
        ["committed", "committed"], ["released", "released"], ["expired", "expired"]]),
      field("Created since", "since", { type: "datetime-local" }),
      field("Created until", "until", { type: "datetime-local" }),
      el("button", { type: "submit" }, "List"));
    async function load(reset) {
      hideMessage(message);
      if (reset) { cursor = null; clear(body); }
      const r = await api(`/v1/reservations${query(Object.assign({}, filters,
        { cursor, limit: 50 }))}`);
      if (r.status !== 200) { showMessage(message, "error", problemText(r)); return; }
      for (const res of r.body.items) body.append(...reservationRows(res, () => load(true)));
      if (reset && !r.body.items.length) {
        body.append(el("tr", {}, el("td", { colspan: 8 }, "No reservation matches.")));
      }
      cursor = r.body.next_cursor;
      more.hidden = !cursor;
    }
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = values(form);
      filters = { status: v.status, since: toIso(v.since), until: toIso(v.until) };
      load(true);
    });
    more.addEventListener("click", () => load(false));
    panel.append(el("h3", {}, "List"), form, message,
      table(["id", "status", "created", "expires", "TPP", "line", "decision path", "where"],
        body, { class: "reservations" }), more);
    panel.listReload = () => load(true);
    load(true);
  }

  function reservationRows(res, reload) {
    const actions = [];
    if (state.can.reserve && res.status === "held") {
      for (const verb of ["commit", "release"]) {
        actions.push(el("button", { type: "button", class: "small secondary",
          onclick: async () => {
            const r = await api(`/v1/reservations/${encodeURIComponent(res.id)}/${verb}`,
              { method: "POST" });
            if (r.status !== 200) alert(problemText(r)); else reload();
          } }, verb));
      }
    }
    return res.lines.map((line, i) => el("tr", { "data-reservation": res.id },
      i === 0 ? [
        el("td", { rowspan: res.lines.length }, el("code", {}, res.id), el("div", {}, actions)),
        el("td", { rowspan: res.lines.length }, status(res.status)),
        el("td", { rowspan: res.lines.length }, when(res.created_at)),
        el("td", { rowspan: res.lines.length }, when(res.expires_at)),
        el("td", { rowspan: res.lines.length, class: "num" }, tpp(res.tpp)),
      ] : [],
      el("td", {}, `#${line.line} · ${tpp(line.tpp)}`),
      el("td", {}, status(line.path, "path")),
      el("td", {}, `${line.destination_country} · ${line.operator_id} · ${line.consignee_id}` +
        (line.chip ? ` · ${line.chip} × ${tpp(line.quantity)}` : "") +
        (line.license_id ? ` · licence ${line.license_id}` : ""))));
  }

  function reserveForm() {
    const message = el("div", { class: "message", role: "status", hidden: true });
    const out = el("div", { class: "decision", "aria-live": "polite" });
    const form = el("form", { class: "filters reserve", "aria-label": "New reservation" },
      field("Destination", "destination_country", { required: true, pattern: "[A-Za-z]{2}",
        maxlength: 2, size: 4, placeholder: "AE" }),
      field("Operator", "operator_id", { required: true }),
      field("Consignee", "consignee_id", { required: true }),
      field("Chip", "chip", { list: "chip-models", placeholder: "H100-SXM" }),
      field("Quantity", "quantity", { type: "number", min: 1, step: 1 }),
      field("or TPP", "tpp", { type: "number", min: 1, step: 1 }),
      field("Licence", "license_id", {}),
      field("Hold (seconds)", "hold_seconds", { type: "number", min: 1, value: 86400 }),
      state.can.reserve ? el("button", { type: "submit", name: "action", value: "reserve" },
        "Reserve") : null,
      el("button", { type: "submit", name: "action", value: "evaluate", class: "secondary" },
        "Check only"));
    const chips = el("datalist", { id: "chip-models" });
    api("/v1/chips").then((r) => {
      if (r.status === 200) {
        for (const c of r.body) chips.append(el("option", { value: c.model }, c.name));
      }
    }).catch(() => {});
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const action = (ev.submitter && ev.submitter.value) || "reserve";
      const v = values(form);
      hideMessage(message);
      clear(out);
      const line = { destination_country: v.destination_country.toUpperCase(),
        operator_id: v.operator_id, consignee_id: v.consignee_id };
      if (v.chip) line.chip = v.chip;
      if (v.quantity) line.quantity = Number(v.quantity);
      if (v.tpp) line.tpp = Number(v.tpp);
      if (v.license_id) line.license_id = v.license_id;
      const body = { lines: [line] };
      if (v.hold_seconds && action === "reserve") body.hold_seconds = Number(v.hold_seconds);
      const r = action === "reserve"
        ? await api("/v1/reservations", { method: "POST", body,
          headers: { "Idempotency-Key": newIdempotencyKey() } })
        : await api("/v1/evaluate", { method: "POST", body });
      if (r.status === 201) {
        out.append(el("div", { class: "message ok", role: "status" },
          `Held ${r.body.id}: ${tpp(r.body.tpp)} TPP until ${when(r.body.expires_at)}; ` +
          `path ${r.body.lines.map((l) => l.path).join(", ")}.`));
        const panel = $("#panel-reservations");
        if (panel && panel.listReload) panel.listReload();
      } else if (r.status === 200 && action === "evaluate") {
        out.append(el("div", { class: `message ${r.body.allowed ? "ok" : "error"}`,
          role: "status" }, r.body.allowed
          ? `Allowed (nothing held): path ${r.body.lines.map((l) => l.path).join(", ")}.`
          : "Would be denied (nothing held):"));
        if (!r.body.allowed) out.append(violationsTable(r.body.violations));
      } else if (r.status === 409 && r.body && r.body.violations) {
        out.append(el("div", { class: "message error", role: "alert" },
          `Denied — ${r.body.title}. Nothing was held for any line.`),
        violationsTable(r.body.violations));
      } else {
        showMessage(message, "error", problemText(r));
      }
    });
    return el("div", { class: "card" }, el("h3", {}, state.can.reserve ? "New reservation" :
      "Check a reservation"), form, chips, message, out);
  }

  function violationsTable(violations) {
    return table(["line", "constraint", "rule", "reason", "key", "cap", "used", "requested"],
      violations.map((v) => el("tr", { class: "violation" },
        el("td", {}, `#${v.line}`),
        el("td", {}, el("code", { class: "constraint" }, v.constraint)),
        el("td", {}, el("code", { class: "rule" }, v.rule)),
        el("td", { class: "reason" }, v.reason),
        el("td", {}, el("code", {}, v.key)),
        el("td", { class: "num" }, tpp(v.cap)),
        el("td", { class: "num" }, tpp(v.used)),
        el("td", { class: "num" }, tpp(v.requested)))), { class: "violations" });
  }

  // -- history ---------------------------------------------------------------------------------
  function renderHistory(panel) {
    const message = el("div", { class: "message", role: "status", hidden: true });
    const verdict = el("div", { id: "verify-result", "aria-live": "polite" });
    const body = el("tbody", {});
    const more = el("button", { type: "button", class: "secondary", hidden: true }, "More");
    let cursor = null;
    let filters = {};
    const form = el("form", { class: "filters", "aria-label": "History filters" },
      field("Country", "country", { pattern: "[A-Za-z]{2}", maxlength: 2, size: 4 }),
      state.role === "operator" ? null : field("Operator", "operator_id", {}),
      field("Consignee", "consignee_id", {}),
      selectField("Kind", "kind", [["", "any"], ["hold", "hold"], ["commit", "commit"],
        ["release", "release"], ["expire", "expire"], ["reversal", "reversal"]]),
      field("Since", "since", { type: "datetime-local" }),
      field("Until", "until", { type: "datetime-local" }),
      el("button", { type: "submit" }, "Show"));
    async function load(reset) {
      hideMessage(message);
      if (reset) { cursor = null; clear(body); }
      const r = await api(`/v1/entries${query(Object.assign({}, filters, { cursor, limit: 50 }))}`);
      if (r.status !== 200) { showMessage(message, "error", problemText(r)); return; }
      for (const e of r.body.items) {
        body.append(el("tr", { "data-seq": e.seq },
          el("td", { class: "num" }, String(e.seq)),
          el("td", {}, status(e.kind, "kind")),
          el("td", {}, when(e.at)),
          el("td", {}, el("code", {}, e.reservation_id), ` #${e.line_no}`),
          el("td", { class: "num" }, tpp(e.tpp)),
          el("td", {}, `${e.country} · ${e.operator_id} · ${e.consignee_id}`),
          el("td", {}, e.path),
          el("td", {}, hashCell(e.hash)),
          el("td", {}, hashCell(e.prev_hash))));
      }
      if (reset && !r.body.items.length) {
        body.append(el("tr", {}, el("td", { colspan: 9 }, "No entry matches.")));
      }
      cursor = r.body.next_cursor;
      more.hidden = !cursor;
    }
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = values(form);
      filters = { country: (v.country || "").toUpperCase(), operator_id: v.operator_id,
        consignee_id: v.consignee_id, kind: v.kind, since: toIso(v.since), until: toIso(v.until) };
      load(true);
    });
    more.addEventListener("click", () => load(false));
    const verify = state.can.verify ? el("button", { type: "button", id: "verify-chain",
      onclick: async () => {
        clear(verdict).append(el("p", { class: "muted" }, "Walking the chain…"));
        const r = await api("/v1/audit/verify");
        clear(verdict);
        if (r.status !== 200) { verdict.append(el("div", { class: "message error" },
          problemText(r))); return; }
        const v = r.body;
        verdict.append(el("div", { class: `message ${v.ok ? "ok" : "error"}`, role: "status",
          "data-ok": String(v.ok) },
          el("strong", {}, v.ok ? "Chain ok" : "Chain broken"),
          v.ok ? ` — entries: ${tpp(v.entries)}; head ` :
            ` — first bad seq ${v.first_bad_seq === null ? "—" : v.first_bad_seq}` +
            `${v.reason ? ` (${v.reason})` : ""}; entries: ${tpp(v.entries)}; head `,
          hashCell(v.head)));
      } }, "Verify chain") : null;
    panel.append(el("h2", {}, "History"),
      el("div", { class: "row" }, el("p", { class: "muted" }, "Every entry of the hash-chained " +
        "history, in seq order; each entry's prev_hash is the hash of the one before."), verify),
      verdict, form, message,
      table(["seq", "kind", "at", "reservation", "TPP", "where", "path", "hash", "prev_hash"],
        body, { class: "entries" }), more);
    load(true);
  }

  // -- findings and job runs -----------------------------------------------------------------
  function renderFindings(panel) {
    const message = el("div", { class: "message", role: "status", hidden: true });
    const findings = el("tbody", {});
    const runs = el("tbody", {});
    const moreF = el("button", { type: "button", class: "secondary", hidden: true }, "More");
    const moreR = el("button", { type: "button", class: "secondary", hidden: true }, "More");
    let beforeF = null, beforeR = null;
    const compact = (obj) => Object.entries(obj || {}).map(([k, v]) =>
      `${k}: ${typeof v === "number" ? tpp(v) : typeof v === "object" ? JSON.stringify(v) : v}`)
      .join(" · ");
    async function loadFindings(reset) {
      if (reset) { beforeF = null; clear(findings); }
      const r = await api(`/v1/reconciliation/findings${query({ before_id: beforeF, limit: 50 })}`);
      if (r.status !== 200) { showMessage(message, "error", problemText(r)); return; }
      for (const f of r.body.items) {
        findings.append(el("tr", {}, el("td", { class: "num" }, String(f.id)),
          el("td", {}, status(f.kind, "finding")), el("td", {}, el("code", {}, f.subject)),
          el("td", {}, f.job), el("td", {}, when(f.found_at)),
          el("td", { class: "details" }, compact(f.details))));
      }
      if (reset && !r.body.items.length) {
        findings.append(el("tr", {}, el("td", { colspan: 6 }, "No findings.")));
      }
      beforeF = r.body.next_before_id;
      moreF.hidden = !beforeF;
    }
    async function loadRuns(reset) {
      if (reset) { beforeR = null; clear(runs); }
      const r = await api(`/v1/jobs/runs${query({ before_id: beforeR, limit: 50 })}`);
      if (r.status !== 200) { showMessage(message, "error", problemText(r)); return; }
      for (const j of r.body.items) {
        runs.append(el("tr", {}, el("td", { class: "num" }, String(j.id)),
          el("td", {}, j.job), el("td", {}, j.period), el("td", {}, j.runner),
          el("td", {}, when(j.started_at)), el("td", {}, when(j.finished_at)),
          el("td", {}, status(j.outcome)), el("td", { class: "details" }, compact(j.figures))));
      }
      if (reset && !r.body.items.length) {
        runs.append(el("tr", {}, el("td", { colspan: 8 }, "No job has run yet.")));
      }
      beforeR = r.body.next_before_id;
      moreR.hidden = !beforeR;
    }
    moreF.addEventListener("click", () => loadFindings(false));
    moreR.addEventListener("click", () => loadRuns(false));
    panel.append(el("h2", {}, "Findings and alerts"),
      el("div", { class: "row" }, el("p", { class: "muted" }, "What reconciliation, chain " +
        "verification, shipment matching, the cache check and screening found, newest first; " +
        "then every job run (threshold alerts included) with its figures."),
      el("button", { type: "button", class: "secondary",
        onclick: () => { hideMessage(message); loadFindings(true); loadRuns(true); } },
      "Refresh")),
      message,
      el("h3", {}, "Findings"),
      table(["id", "kind", "subject", "job", "found", "details"], findings), moreF,
      el("h3", {}, "Job runs"),
      table(["id", "job", "period", "runner", "started", "finished", "outcome", "figures"], runs),
      moreR);
    loadFindings(true);
    loadRuns(true);
  }

  // -- policy ---------------------------------------------------------------------------------------
  function provenance(p) {
    if (!p) return el("span", { class: "muted" }, "—");
    return el("span", { class: "prov" }, status(p.status, `st-${p.status}`), " ",
      el("span", {}, p.source), " ", el("span", { class: "muted" }, `(${p.date})`),
      p.note ? el("div", { class: "note" }, p.note) : null);
  }

  function renderPolicy(panel) {
    const p = state.policy;
    const sections = [];
    sections.push(el("dl", { class: "summary" },
      el("div", {}, el("dt", {}, "rule set"), el("dd", {}, el("code", {}, p.name))),
      el("div", {}, el("dt", {}, "version"), el("dd", {}, p.version)),
      el("div", {}, el("dt", {}, "in force"),
        el("dd", {}, `${p.effective_from || "—"} → ${p.effective_to || "open"}`)),
      el("div", { class: "wide" }, el("dt", {}, "description"), el("dd", {}, p.description))));

    if (Array.isArray(p.quotas) && p.quotas.length) {
      sections.push(el("h3", {}, "Quotas"), table(
        ["name", "rule", "title", "scope", "period", "cap (TPP)", "provenance"],
        p.quotas.map((q) => el("tr", {},
          el("td", {}, el("code", {}, q.name)), el("td", {}, q.rule), el("td", {}, q.title),
          el("td", {}, q.scope), el("td", {}, q.window ? `${q.period} ${q.window.from} → ` +
            `${q.window.to}` : q.period),
          el("td", { class: "num" }, q.cap !== null && q.cap !== undefined ? tpp(q.cap) :
            (q.schedule || []).map((s) => el("div", {}, `from ${s.from}: ${tpp(s.cap)}`))),
          el("td", {}, provenance(q.provenance))))));
    }
    if (p.uveu) {
      const u = p.uveu;
      sections.push(el("h3", {}, "UVEU ratios"), el("p", {},
        `${u.rule}: headquarters in ${u.headquarters_in}; at least ${u.tier1_min_pct} % in ` +
        `Tier 1, at most ${u.tier2_max_pct} % in any Tier 2 country` +
        Object.entries(u.home_min_pct || {}).map(([c, v]) => `; at least ${v} % in ${c}`)
          .join("") + ". ", provenance(u.provenance)));
    }
    if (Array.isArray(p.steps) && p.steps.length) {
      sections.push(el("h3", {}, "Decision steps, in order"), table(
        ["step", "rule", "title", "outcome", "path", "quotas", "denial reason"],
        p.steps.map((s) => el("tr", {},
          el("td", {}, el("code", {}, s.id)), el("td", {}, s.rule), el("td", {}, s.title),
          el("td", {}, s.outcome), el("td", {}, s.path || "—"),
          el("td", {}, (s.quotas || []).join(", ") || "—"), el("td", {}, s.reason || "—")))));
    }
    if (p.groups && Object.keys(p.groups).length) {
      sections.push(el("h3", {}, "Country groups"), table(
        ["group", "rule", "members", "provenance"],
        Object.entries(p.groups).map(([name, g]) => el("tr", {},
          el("td", {}, el("strong", {}, g.title), el("div", {}, el("code", {}, name))),
          el("td", {}, g.rule),
          el("td", {}, g.complement_of && g.complement_of.length
            ? `every country not in ${g.complement_of.join(" or ")}` : null,
          (g.members || []).map((m) => el("div", { class: "member" },
            el("span", {}, m.countries.join(" ")),
            m.from || m.until ? el("span", { class: "muted" },
              ` (${m.from || "…"} → ${m.until || "…"})`) : null, " ",
            provenance(m.provenance)))),
          el("td", {}, provenance(g.provenance))))));
    }
    if (Array.isArray(p.chips) && p.chips.length) {
      sections.push(el("h3", {}, "Chips"), table(["model", "name", "TPP", "provenance"],
        p.chips.map((c) => el("tr", {},
          el("td", {}, el("code", {}, c.id)), el("td", {}, c.name),
          el("td", { class: "num" }, tpp(c.tpp)), el("td", {}, provenance(c.provenance))))));
    }
    if (p.not_firm && Object.keys(p.not_firm).length) {
      sections.push(el("h3", {}, "Figures that are not firm"), el("ul", { class: "columns" },
        Object.entries(p.not_firm).map(([what, st]) => el("li", {}, el("code", {}, what), " ",
          status(st, `st-${st}`)))));
    }
    panel.append(el("h2", {}, "Policy in force"),
      el("p", { class: "muted" }, "The rule set this service decides with (GET /v1/policy): " +
        "every number and list with its source, date and status."), ...sections);
  }

  // -- start -------------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("#sign-in-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const key = $("#api-key").value.trim();
      if (key) signIn(key);
    });
    $("#sign-out").addEventListener("click", () => signOut(null));
    window.addEventListener("unhandledrejection", (ev) => {
      if (ev.reason instanceof SignedOut) ev.preventDefault();
    });
    const kept = sessionStorage.getItem(KEY_SLOT);
    if (kept) signIn(kept); else $("#api-key").focus();
  });
})();
