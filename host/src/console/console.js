// The Switchyard console: reads the admin API of the engine that serves it (/backends,
// /buckets, /policies, /jobs, /metrics) every few seconds and renders one page of it.
// No framework and no build step: the binary embeds this file as it is.
"use strict";

// Metric families the console reads from /metrics. Rates are the change between two
// refreshes; a family the engine does not export shows as "–".
const METRICS = {
  // Requests to backends by backend, operation and outcome: an outcome other than these
  // counts as an error (a key missing from one member is a read falling through; a failed
  // precondition and a request the client got wrong are answers of a backend that works).
  backendRequests: "switchyard_backend_requests_total",
  backendOk: ["ok", "not_found", "precondition_failed", "rejected"],
  // Bytes read from and written to each backend.
  backendReceived: "switchyard_backend_received_bytes_total",
  backendSent: "switchyard_backend_sent_bytes_total",
  // Client requests by operation, bucket and status class ("2xx" .. "5xx"), and the bytes
  // clients sent to and received from each bucket.
  requests: "switchyard_requests_total",
  bucketReceived: "switchyard_bucket_received_bytes_total",
  bucketSent: "switchyard_bucket_sent_bytes_total",
  decisions: "switchyard_policy_decisions_total",
  fallbacks: "switchyard_policy_fallbacks_total",
  decisionSeconds: "switchyard_policy_decision_seconds",
};

const REFRESH_MS = 2000;
const PAGES = ["backends", "buckets", "policies", "jobs", "storage"];

const state = {
  token: sessionStorage.getItem("switchyard-token") || "",
  data: null,
  // The last two scrapes of /metrics, for rates: {at, samples}.
  scrapes: [],
  refreshes: 0,
};

// ---- the API -------------------------------------------------------------------------

class Refused extends Error {}

async function api(path, options = {}) {
  const headers = {};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const resp = await fetch(path, { ...options, headers, cache: "no-store" });
  if (resp.status === 401) {
    askForToken(state.token ? "The admin token was refused." : "This engine asks for the admin token.");
    throw new Refused(path);
  }
  const text = await resp.text();
  if (!resp.ok) {
    let message = text;
    try { message = JSON.parse(text).error || text; } catch (_) { /* plain text */ }
    throw new Error(`${path}: ${resp.status} ${message}`);
  }
  return path === "/metrics" ? text : JSON.parse(text);
}

// ---- /metrics --------------------------------------------------------------------------

// Parses the OpenMetrics text format into [{name, labels, value}].
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    let l;
    while ((l = re.exec(m[2] || "")) !== null) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

// The sum of a family's samples whose labels match `match` (values compared without case:
// older engines write label values in CamelCase), in a scrape; null if there is none.
function total(scrape, name, match = () => true) {
  if (!scrape) return null;
  let sum = null;
  for (const s of scrape.samples) {
    if (s.name === name && match(s.labels)) sum = (sum || 0) + s.value;
  }
  return sum;
}

// A counter's total in the latest scrape: a series not made yet has counted nothing.
function counted(name, match) {
  return state.scrapes[1] ? total(state.scrapes[1], name, match) || 0 : null;
}

// The per-second rate of that sum between the last two scrapes.
function rate(name, match) {
  const [before, now] = state.scrapes;
  const a = total(before, name, match);
  const b = total(now, name, match);
  if (a === null || b === null) return null;
  return Math.max(0, b - a) / Math.max(0.001, (now.at - before.at) / 1000);
}

const lower = (v) => String(v || "").toLowerCase();
const forBackend = (name) => (l) => l.backend === name;
const forBucket = (name) => (l) => l.bucket === name;
const forPolicy = (name) => (l) => l.policy === name;

// ---- formatting ------------------------------------------------------------------------

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + " " + units[i];
}

const count = (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en"));
const perSecond = (n) => (n === null ? "–" : n.toFixed(n < 10 ? 2 : 0));

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return (seconds * 1000).toFixed(seconds < 0.01 ? 2 : 0) + " ms";
  if (seconds < 120) return seconds.toFixed(0) + " s";
  if (seconds < 7200) return (seconds / 60).toFixed(0) + " min";
  return (seconds / 3600).toFixed(1) + " h";
}

// Builds an element; children are nodes or text (never parsed as HTML: names, reasons and
// errors come from configuration, files and backends).
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    // Through the CSSOM: the Content-Security-Policy refuses style attributes.
    else if (k === "style") Object.assign(e.style, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function fill(tbody, rows, empty) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 20, class: "empty" }, empty))]));
}

function health(ok) {
  return el("span", { class: ok ? "ok" : "bad" }, ok ? "healthy" : "unhealthy");
}

// ---- notices and the token --------------------------------------------------------------

function notice(text, kind = "info") {
  const p = document.getElementById("notice");
  p.textContent = text;
  p.className = kind;
  p.hidden = !text;
}

function askForToken(why) {
  notice(why + " Enter it above.", "error");
  document.getElementById("token").focus();
}

function showTokenState() {
  document.getElementById("token-state").textContent = state.token ? "token set" : "";
}

// ---- pages -------------------------------------------------------------------------------

function renderBackends(d) {
  const rows = d.backends.map((b) => {
    const errors = rate(METRICS.backendRequests, (l) => l.backend === b.name && !METRICS.backendOk.includes(lower(l.outcome)));
    return el("tr", { "data-name": b.name },
      el("td", {}, b.name),
      el("td", {}, b.kind),
      el("td", {}, Object.entries(b.labels).map(([k, v]) => el("span", { class: "label" }, `${k}=${v}`))),
      el("td", {}, health(b.healthy)),
      el("td", {}, b.latency_us === null ? "–" : duration(b.latency_us / 1e6)),
      el("td", {}, perSecond(rate(METRICS.backendRequests, forBackend(b.name)))),
      el("td", { class: errors ? "bad" : "" }, perSecond(errors)),
      el("td", {}, bytesRate(METRICS.backendReceived, forBackend(b.name))),
      el("td", {}, bytesRate(METRICS.backendSent, forBackend(b.name))));
  });
  fill(document.querySelector("#backends-table tbody"), rows, "No backends.");
}

function bytesRate(name, match) {
  const r = rate(name, match);
  return r === null ? "–" : bytes(r) + "/s";
}

function renderBuckets(d) {
  const backends = new Map(d.backends.map((b) => [b.name, b]));
  const rows = d.buckets.map((b) => {
    const errors = rate(METRICS.requests, (l) => l.bucket === b.name && l.status_class === "5xx");
    return el("tr", { "data-name": b.name },
      el("td", {}, b.name),
      el("td", {}, el("ol", { class: "members" }, b.members.map((m) => {
        const backend = backends.get(m);
        return el("li", {}, m, " ", backend ? health(backend.healthy) : null);
      }))),
      el("td", {}, b.policy),
      el("td", {}, b.failure),
      el("td", {}, b.tiering_every ? "every " + b.tiering_every : "–"),
      el("td", {}, perSecond(rate(METRICS.requests, forBucket(b.name)))),
      el("td", { class: errors ? "bad" : "" }, perSecond(errors)),
      el("td", {}, bytesRate(METRICS.bucketReceived, forBucket(b.name))),
      el("td", {}, bytesRate(METRICS.bucketSent, forBucket(b.name))),
      el("td", {}, b.dynamic ? "CreateBucket" : "configuration"));
  });
  fill(document.querySelector("#buckets-table tbody"), rows, "No buckets.");
}

function renderPolicies(d) {
  const mean = (name) => {
    const sum = total(state.scrapes[1], METRICS.decisionSeconds + "_sum", forPolicy(name));
    const n = total(state.scrapes[1], METRICS.decisionSeconds + "_count", forPolicy(name));
    return n ? duration(sum / n) : "–";
  };
  const loaded = d.policies.map((p) => el("tr", { "data-name": p.name },
    el("td", {}, p.name),
    el("td", { class: "mono", title: p.sha256 }, p.sha256.slice(0, 12)),
    el("td", {}, bytes(p.size)),
    el("td", {}, p.rejected
      ? el("span", { class: "bad", title: p.rejected.reason }, `loaded; a newer file was rejected: ${p.rejected.reason.split("\n")[0]}`)
      : el("span", { class: "ok" }, "loaded")),
    el("td", {}, count(counted(METRICS.decisions, forPolicy(p.name)))),
    el("td", {}, count(counted(METRICS.fallbacks, forPolicy(p.name)))),
    el("td", {}, mean(p.name))));
  // Policies that buckets name but that are not in service.
  const known = new Set(d.policies.map((p) => p.name));
  const missing = [...new Set(d.buckets.map((b) => b.policy))]
    .filter((p) => p !== "default" && !known.has(p))
    .map((p) => el("tr", { "data-name": p },
      el("td", {}, p), el("td", {}, "–"), el("td", {}, "–"),
      el("td", {}, el("span", { class: "bad" }, "not loaded (see the engine's log and /readyz)")),
      el("td", {}, count(counted(METRICS.decisions, forPolicy(p)))),
      el("td", {}, count(counted(METRICS.fallbacks, forPolicy(p)))),
      el("td", {}, "–")));
  fill(document.querySelector("#policies-table tbody"), [...loaded, ...missing], "No policies loaded: buckets use the built-in default.");
}

function jobState(j) {
  const s = j.status.state;
  return el("span", { class: s === "failed" ? "bad" : s === "done" ? "ok" : "" },
    s, j.status.error ? `: ${j.status.error}` : "");
}

function progress(j) {
  const p = j.progress;
  if (j.kind === "inventory") return `${count(p.listed)} objects, ${bytes(p.listed_bytes)} listed`;
  const of = p.listing_done ? count(p.listed) : count(p.listed) + "+";
  const share = p.listing_done && p.listed ? Math.round((100 * p.finished) / p.listed) : null;
  return el("div", {},
    el("div", {}, `${count(p.finished)} of ${of} objects, ${bytes(p.bytes_copied)} copied`),
    share === null ? null : el("div", { class: "bar" }, el("div", { style: { width: `${share}%` } })));
}

function params(j) {
  return Object.entries(j.params)
    .filter(([, v]) => v !== null && v !== false && v !== "0/1")
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}

function renderJobs(d) {
  const rows = [...d.jobs].reverse().map((j) => el("tr", { "data-id": j.id, "data-state": j.status.state },
    el("td", {}, j.id),
    el("td", {}, j.kind),
    el("td", {}, j.bucket),
    el("td", { class: "mono" }, params(j)),
    el("td", {}, jobState(j)),
    el("td", {}, progress(j)),
    el("td", {}, j.kind === "inventory" ? "–" : bytes(j.bytes_per_second) + "/s"),
    el("td", {}, duration(j.eta_seconds)),
    el("td", { class: j.progress.failed ? "bad" : "" }, count(j.progress.failed)),
    el("td", {}, j.status.state === "running"
      ? el("button", { class: "cancel", onclick: () => cancel(j.id) }, "Cancel")
      : null)));
  fill(document.querySelector("#jobs-table tbody"), rows, "No jobs since this engine started.");
  fillBucketSelects(d);
}

// Keeps the forms' choices in step with the buckets, without losing what was picked.
function fillBucketSelects(d) {
  for (const form of document.querySelectorAll("#migrate-form, #tier-form")) {
    const select = form.querySelector(".bucket-select");
    const names = d.buckets.map((b) => b.name);
    if (select.dataset.names !== names.join("\n")) {
      const picked = select.value;
      select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
      select.dataset.names = names.join("\n");
      if (names.includes(picked)) select.value = picked;
    }
    const bucket = d.buckets.find((b) => b.name === select.value);
    form.querySelectorAll(".member-select").forEach((m, i) => {
      const members = bucket ? bucket.members : [];
      if (m.dataset.names !== members.join("\n")) {
        m.replaceChildren(...members.map((n) => el("option", { value: n }, n)));
        m.dataset.names = members.join("\n");
        // From the last member to the first: the usual migration onto a new first member.
        m.value = members[i === 0 ? members.length - 1 : 0] || "";
      }
    });
  }
}

function renderStorage(d) {
  const list = document.getElementById("storage-list");
  const cards = d.buckets.map((b) => {
    const jobs = d.jobs.filter((j) => j.kind === "inventory" && j.bucket === b.name);
    const latest = jobs.filter((j) => j.status.state === "done").pop();
    const running = jobs.find((j) => j.status.state === "running");
    const inv = latest && latest.inventory;
    const stored = inv ? inv.members.reduce((s, m) => s + m.bytes, 0) : 0;
    const table = inv
      ? el("table", { class: "inventory" },
        el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "Objects"), el("th", {}, "Bytes"), el("th", {}, "Share of stored bytes"))),
        el("tbody", {},
          el("tr", { class: "bucket-total", "data-member": "" },
            el("td", {}, "As clients see it"), el("td", {}, count(inv.bucket.objects)), el("td", {}, bytes(inv.bucket.bytes)), el("td", {}, "")),
          inv.members.map((m) => el("tr", { "data-member": m.name },
            el("td", {}, m.name), el("td", {}, count(m.objects)), el("td", {}, bytes(m.bytes)),
            el("td", {}, el("div", { class: "bar" }, el("div", { style: { width: `${stored ? (100 * m.bytes) / stored : 0}%` } })))))))
      : el("p", { class: "empty" }, "No inventory yet.");
    return el("div", { class: "card", "data-bucket": b.name },
      el("h3", {}, b.name),
      latest ? el("p", { class: "hint" }, `Inventory ${latest.id}, finished ${new Date(latest.finished).toLocaleString("en-GB")}, shard ${latest.params.shard}.`) : null,
      table,
      running
        ? el("p", {}, `Inventory ${running.id} running: ${progress(running)}`)
        : el("button", { class: "inventory", onclick: () => start("inventory", { bucket: b.name }) }, "Run inventory"));
  });
  list.replaceChildren(...(cards.length ? cards : [el("p", { class: "empty" }, "No buckets.")]));
}

const RENDER = { backends: renderBackends, buckets: renderBuckets, policies: renderPolicies, jobs: renderJobs, storage: renderStorage };

function page() {
  const p = location.hash.slice(1);
  return PAGES.includes(p) ? p : "backends";
}

function render() {
  const p = page();
  for (const section of document.querySelectorAll("[data-page]")) section.hidden = section.dataset.page !== p;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.getAttribute("href") === "#" + p);
  if (state.data) {
    RENDER[p](state.data);
    document.body.dataset.rendered = p;
  }
}

// ---- refresh -------------------------------------------------------------------------------

async function refresh() {
  try {
    const [backends, buckets, policies, jobs, metrics] = await Promise.all(
      ["/backends", "/buckets", "/policies", "/jobs", "/metrics"].map((p) => api(p)));
    state.scrapes = [state.scrapes[1], { at: Date.now(), samples: parseMetrics(metrics) }].filter(Boolean);
    if (state.scrapes.length === 1) state.scrapes.unshift(null);
    state.data = { backends, buckets, policies, jobs };
    state.refreshes += 1;
    document.body.dataset.refreshes = state.refreshes;
    document.getElementById("refreshed").textContent = "Refreshed " + new Date().toLocaleTimeString("en-GB");
    if (document.getElementById("notice").className === "stale") notice("");
    render();
  } catch (e) {
    if (!(e instanceof Refused)) notice("Cannot reach the admin API: " + e.message, "stale");
  }
}

// ---- actions -------------------------------------------------------------------------------

async function post(path, what) {
  if (!state.token) {
    askForToken(what + " needs the admin token.");
    return null;
  }
  try {
    const job = await api(path, { method: "POST" });
    notice(`${what}: job ${job.id} ${job.status.state}.`);
    await refresh();
    return job;
  } catch (e) {
    if (!(e instanceof Refused)) notice(`${what} failed: ${e.message}`, "error");
    return null;
  }
}

function start(kind, fields) {
  const query = new URLSearchParams(Object.entries(fields).filter(([, v]) => v !== "" && v !== undefined));
  const what = { migrate: "Starting a migration", tier: "Starting a tiering pass", inventory: "Starting an inventory" }[kind];
  return post(`/jobs/${kind}?${query}`, what);
}

function cancel(id) {
  return post(`/jobs/${id}/cancel`, `Cancelling job ${id}`);
}

function formFields(form) {
  const fields = {};
  for (const input of form.querySelectorAll("select, input")) {
    if (input.type === "checkbox") fields[input.name] = input.checked ? "true" : "";
    else fields[input.name] = input.value.trim();
  }
  return fields;
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = document.getElementById("token");
    state.token = input.value.trim();
    input.value = "";
    if (state.token) sessionStorage.setItem("switchyard-token", state.token);
    else sessionStorage.removeItem("switchyard-token");
    showTokenState();
    notice("");
    refresh();
  });
  document.getElementById("migrate-form").addEventListener("submit", (e) => {
    e.preventDefault();
    start("migrate", formFields(e.target));
  });
  document.getElementById("tier-form").addEventListener("submit", (e) => {
    e.preventDefault();
    start("tier", formFields(e.target));
  });
  for (const select of document.querySelectorAll(".bucket-select")) {
    select.addEventListener("change", () => state.data && fillBucketSelects(state.data));
  }
  window.addEventListener("hashchange", render);
  showTokenState();
  render();
  refresh();
  setInterval(refresh, REFRESH_MS);
});
