// Portico console: live updates over server-sent events, table search and
// sort, and small conveniences. No framework; every page works without it.
"use strict";

function fmtTime(v) {
  if (!v || v.startsWith("0001-")) return "—";
  const d = new Date(v);
  if (isNaN(d)) return v;
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function text(v) {
  if (v === null || v === undefined) return "";
  if (Array.isArray(v)) return v.join(", ");
  return String(v);
}

function el(tag, attrs, kids) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  for (const c of kids || []) e.append(c);
  return e;
}

// Streams: one EventSource per stream URL on the page.
const handlers = {};
function subscribe(url, event, fn) {
  if (!handlers[url]) {
    handlers[url] = {};
    const es = new EventSource(url);
    es.addEventListener("signedout", () => { es.close(); location.href = "/login?next=" + encodeURIComponent(location.pathname); });
    handlers[url].__es = es;
  }
  if (!handlers[url][event]) {
    handlers[url][event] = [];
    handlers[url].__es.addEventListener(event, (m) => {
      const data = JSON.parse(m.data);
      for (const f of handlers[url][event]) f(data);
    });
  }
  handlers[url][event].push(fn);
}

// Dashboard.
function dashboard(root) {
  const checks = (ul, items, okf, label) => {
    ul.replaceChildren(...(items && items.length ? items.map((c) => el("li", { class: okf(c) ? "ok" : "bad" }, [label(c)])) : [el("li", {}, ["none"])]));
  };
  subscribe(root.dataset.stream, "dashboard", (d) => {
    for (const e of root.querySelectorAll("[data-g]")) {
      const v = d.gauges[e.dataset.g] || 0;
      e.textContent = e.dataset.fmt ? v.toFixed(Number(e.dataset.fmt === "1" ? 0 : 2)) : String(v);
    }
    const set = (k, v) => { const e = root.querySelector(`[data-k="${k}"]`); if (e) e.textContent = v; };
    set("node", d.node); set("version", d.version); set("uptime", d.uptime);
    set("config_version", d.config_version); set("time", fmtTime(d.time));
    set("pending_restart", (d.pending_restart || []).join(", "));
    document.getElementById("pending").hidden = !(d.pending_restart && d.pending_restart.length);
    const r = root.querySelector('[data-k="ready"]');
    r.textContent = d.ready ? "ready" : "not ready";
    r.className = "badge " + (d.ready ? "ok" : "bad");
    checks(document.getElementById("checks"), d.checks, (c) => c.ok,
      (c) => c.name + (c.error ? ": " + c.error : "") + (c.info ? " (" + c.info + ")" : ""));
    checks(document.getElementById("callservers"), d.call_servers, (c) => c.up,
      (c) => `${c.address} (${c.transport}) ${c.up ? "up" : "down"}`);
    const cw = document.getElementById("certwarn");
    if (d.cert_warnings && d.cert_warnings.length) {
      checks(cw, d.cert_warnings, () => false,
        (c) => `${c.name}: ${c.expired ? "expired" : "expires in " + c.days_left + " days"} (${fmtTime(c.not_after)})`);
    } else {
      cw.replaceChildren(el("li", { class: "ok" }, ["none expires within 30 days"]));
    }
    const tb = document.querySelector("#events tbody");
    tb.replaceChildren(...(d.events || []).map((e) => el("tr", {}, [
      el("td", {}, [fmtTime(e.time)]), el("td", {}, [e.severity]), el("td", {}, [e.component]), el("td", {}, [e.message])])));
  });
  const every = Number(root.dataset.sample) || 10000;
  setInterval(() => {
    for (const img of root.querySelectorAll("img.plot")) {
      img.src = img.src.split("?")[0] + "?t=" + Date.now();
    }
  }, every);
}

// Live tables: rows rebuilt from the stream; search and sort kept.
const tableState = {};
function cellOf(th, row, table) {
  const td = el("td");
  if (th.dataset.action === "end") {
    const f = el("form", { method: "post", action: "/calls/" + encodeURIComponent(row.id) + "/end" }, [
      el("input", { type: "hidden", name: "csrf", value: table.dataset.csrf }),
      el("button", { type: "submit" }, ["End call"])]);
    td.append(f);
    return td;
  }
  if (th.dataset.action === "forget") {
    const f = el("form", { method: "post", action: "/registrations/forget", "data-confirm": "Forget this binding?" }, [
      el("input", { type: "hidden", name: "csrf", value: table.dataset.csrf }),
      el("input", { type: "hidden", name: "aor", value: row.aor }),
      el("input", { type: "hidden", name: "contact", value: row.contact }),
      el("button", { type: "submit", class: "danger" }, ["Forget"])]);
    confirmForm(f);
    td.append(f);
    return td;
  }
  if (th.dataset.action === "forget-h323") {
    if (!row.aliases || !row.aliases.length) return td;
    const f = el("form", { method: "post", action: "/registrations/h323/forget", "data-confirm": "Forget this H.323 registration?" }, [
      el("input", { type: "hidden", name: "csrf", value: table.dataset.csrf }),
      el("input", { type: "hidden", name: "alias", value: row.aliases[0] }),
      el("button", { type: "submit", class: "danger", "aria-label": "Forget the H.323 registration of " + row.aliases[0] }, ["Forget"])]);
    confirmForm(f);
    td.append(f);
    return td;
  }
  let v = row[th.dataset.col];
  v = th.dataset.type === "time" ? fmtTime(v) : text(v);
  if (th.dataset.link) {
    td.append(el("a", { href: th.dataset.link + encodeURIComponent(v) }, [v]));
  } else {
    td.textContent = v;
  }
  return td;
}

function renderTable(table) {
  const st = tableState[table.id];
  if (!st || !st.rows) return;
  const ths = [...table.querySelectorAll("thead th")];
  const q = (st.q || "").toLowerCase();
  let rows = st.rows.filter((r) => !q || JSON.stringify(r).toLowerCase().includes(q));
  if (st.sort) {
    rows = rows.slice().sort((a, b) => {
      const x = text(a[st.sort]), y = text(b[st.sort]);
      return (x < y ? -1 : x > y ? 1 : 0) * st.dir;
    });
  }
  const tb = table.querySelector("tbody");
  if (!rows.length) {
    tb.replaceChildren(el("tr", { class: "empty" }, [el("td", { colspan: String(ths.length) }, [st.rows.length ? "nothing matches" : "none"])]));
  } else {
    tb.replaceChildren(...rows.map((r) => el("tr", {}, ths.map((th) => cellOf(th, r, table)))));
  }
  const count = document.querySelector(`[data-count="${table.id}"]`);
  if (count) count.textContent = st.rows.length + " live";
}

function liveTable(table) {
  const st = (tableState[table.id] = { dir: 1 });
  for (const th of table.querySelectorAll("thead th[data-col]")) {
    const b = th.querySelector("button");
    if (!b) continue;
    b.addEventListener("click", () => {
      st.dir = st.sort === th.dataset.col ? -st.dir : 1;
      st.sort = th.dataset.col;
      for (const o of table.querySelectorAll("thead th")) o.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", st.dir > 0 ? "ascending" : "descending");
      if (!st.rows) st.rows = rowsFromDOM(table);
      renderTable(table);
    });
  }
  if (table.dataset.stream) {
    subscribe(table.dataset.stream, "live", (d) => {
      const rows = d[table.dataset.live] || [];
      const j = JSON.stringify(rows);
      if (j === st.last) return; // unchanged: keep the rows (and a pending click)
      st.last = j;
      st.rows = rows;
      renderTable(table);
    });
  }
}

// rowsFromDOM reads a server-rendered table (history pages) for sorting.
function rowsFromDOM(table) {
  const cols = [...table.querySelectorAll("thead th")].map((th) => th.dataset.col);
  return [...table.querySelectorAll("tbody tr:not(.empty)")].map((tr) => {
    const r = { __tr: tr };
    [...tr.children].forEach((td, i) => { if (cols[i]) r[cols[i]] = td.textContent; });
    return r;
  });
}

function filterInput(input) {
  const table = document.getElementById(input.dataset.filter);
  input.addEventListener("input", () => {
    const st = tableState[table.id] || (tableState[table.id] = { dir: 1 });
    st.q = input.value;
    if (!st.rows) {
      // A static table: hide rows in place.
      const q = input.value.toLowerCase();
      for (const tr of table.querySelectorAll("tbody tr")) tr.hidden = q && !tr.textContent.toLowerCase().includes(q);
      return;
    }
    renderTable(table);
  });
}

// Confirm buttons that destroy something.
function confirmForm(f) {
  f.addEventListener("submit", (e) => { if (!confirm(f.dataset.confirm)) e.preventDefault(); });
}
function confirmForms() {
  for (const f of document.querySelectorAll("form[data-confirm]")) confirmForm(f);
}

// Config editor: clicking a field error selects its line in the editor.
function configEditor() {
  const ta = document.getElementById("document");
  if (!ta) return;
  for (const a of document.querySelectorAll("[data-line]")) {
    a.addEventListener("click", (e) => {
      e.preventDefault();
      const n = Number(a.dataset.line);
      const lines = ta.value.split("\n");
      let start = 0;
      for (let i = 0; i < n - 1 && i < lines.length; i++) start += lines[i].length + 1;
      ta.focus();
      ta.setSelectionRange(start, start + (lines[n - 1] || "").length);
    });
  }
}

// Ladder: clicking an arrow of the embedded chart (same origin) opens
// that message in the list under it.
function ladderChart(obj) {
  const wire = () => {
    const doc = obj.contentDocument;
    if (!doc) return;
    for (const a of doc.querySelectorAll("a.msg")) {
      a.addEventListener("click", (e) => {
        e.preventDefault();
        const m = document.getElementById("msg-" + a.id.replace("arrow-", ""));
        if (!m) return;
        for (const o of document.querySelectorAll("#messages details.shown")) o.classList.remove("shown");
        m.open = true;
        m.classList.add("shown");
        m.scrollIntoView({ block: "nearest" });
      });
    }
  };
  obj.addEventListener("load", wire);
  if (obj.contentDocument && obj.contentDocument.readyState === "complete") wire();
}

// Live SIP trace: an EventSource on the API's trace, filtered by user or
// address; the list keeps the newest traceKeep messages.
const traceKeep = 500;
function sipTrace(form) {
  const list = document.getElementById("trace"), state = document.getElementById("trace-state");
  const start = document.getElementById("trace-start"), stop = document.getElementById("trace-stop");
  let es = null;
  const finish = (why) => {
    if (es) es.close();
    es = null;
    start.disabled = false; stop.disabled = true;
    state.textContent = why;
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (es) es.close();
    const q = new URLSearchParams();
    for (const k of ["user", "address", "seconds"]) if (form.elements[k].value) q.set(k, form.elements[k].value);
    list.replaceChildren();
    es = new EventSource(form.dataset.url + "?" + q);
    start.disabled = true; stop.disabled = false;
    state.textContent = "Running.";
    es.addEventListener("message", (m) => {
      const d = JSON.parse(m.data);
      list.append(el("li", {}, [el("details", {}, [
        el("summary", {}, [`${fmtTime(d.time)} ${d.interface} ${d.direction} ${d.transport} ${d.local} ⇄ ${d.remote}: ${d.summary}`]),
        el("pre", {}, [d.text])])]));
      while (list.children.length > traceKeep) list.firstElementChild.remove();
    });
    es.addEventListener("end", (m) => finish(`Ended; ${JSON.parse(m.data).dropped} messages dropped by the rate limit.`));
    es.addEventListener("error", () => finish(es && es.readyState === EventSource.CONNECTING ? "The trace stopped (refused or cut off)." : "Stopped."));
  });
  stop.addEventListener("click", () => finish("Stopped."));
}

document.addEventListener("DOMContentLoaded", () => {
  const tf = document.getElementById("trace-form");
  if (tf) sipTrace(tf);
  for (const o of document.querySelectorAll("object.ladder")) ladderChart(o);
  const d = document.getElementById("dashboard");
  if (d) dashboard(d);
  for (const t of document.querySelectorAll("table.live-table")) liveTable(t);
  for (const i of document.querySelectorAll("input[data-filter]")) filterInput(i);
  confirmForms();
  configEditor();
});
