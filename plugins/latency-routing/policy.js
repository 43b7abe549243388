// Switchyard policy: latency-aware read routing.
//
// Built into a WebAssembly component (world `switchyard:policy/policy@0.1.0`) by
// `build.sh` with jco's QuickJS backend. WIT values arrive as plain JS values: records
// with camelCase fields (`latencyUs`), `option<T>` as the value or `null`, tuples as
// arrays. A `result` error is returned by throwing the `policy-error` variant
// (`{ tag: "invalid-input", val: "..." }`); anything else thrown is a trap, which the
// host treats as a policy bug, so every expected failure goes through `fail()`.

import host from "switchyard:policy/host@0.1.0";

const CONFIG_KEYS = ["prefer_labels", "max_latency_us"];

function fail(tag, message) {
  // Thrown objects of this shape become `err(policy-error)`; see the header comment.
  throw { tag, val: message };
}

// Parses `host.config()`: "" means defaults, anything else must be a JSON object with
// only the known keys. Returns `{ preferLabels: [[k, v], ...], maxLatencyUs: number | null }`.
function readConfig() {
  const raw = host.config();
  const config = { preferLabels: [], maxLatencyUs: null };
  if (raw.trim() === "") {
    return config;
  }
  let parsed;
  try {
    parsed = JSON.parse(raw);
  } catch (e) {
    invalidConfig(`config is not valid JSON: ${e && e.message ? e.message : e}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    invalidConfig("config must be a JSON object");
  }
  for (const key of Object.keys(parsed)) {
    if (!CONFIG_KEYS.includes(key)) {
      invalidConfig(`unknown config key "${key}" (known: ${CONFIG_KEYS.join(", ")})`);
    }
  }
  if (parsed.prefer_labels !== undefined) {
    const labels = parsed.prefer_labels;
    if (labels === null || typeof labels !== "object" || Array.isArray(labels)) {
      invalidConfig('"prefer_labels" must be an object of label name to value');
    }
    for (const [k, v] of Object.entries(labels)) {
      if (typeof v !== "string") {
        invalidConfig(`"prefer_labels.${k}" must be a string`);
      }
      config.preferLabels.push([k, v]);
    }
  }
  if (parsed.max_latency_us !== undefined) {
    const max = parsed.max_latency_us;
    if (typeof max !== "number" || !Number.isInteger(max) || max < 0) {
      invalidConfig('"max_latency_us" must be a non-negative integer (microseconds)');
    }
    config.maxLatencyUs = max;
  }
  return config;
}

// The configuration, parsed by an instance's first call and kept: an instance's
// configuration never changes (a new one comes with new instances). A broken one is
// parsed again by every call, which throws its error each time.
let parsedConfig = null;
function currentConfig() {
  if (parsedConfig === null) {
    parsedConfig = readConfig();
  }
  return parsedConfig;
}

function invalidConfig(message) {
  host.log("warn", `latency-routing: ${message}`);
  fail("invalid-input", message);
}

function hasLabels(member, wanted) {
  return wanted.every(([k, v]) => member.labels.some(([mk, mv]) => mk === k && mv === v));
}

// Orders members best first. Sort key, compared in turn:
//   1. healthy before unhealthy;
//   2. within healthy: latency <= max_latency_us (or unknown) before latency above it;
//   3. members matching every `prefer_labels` entry before the others (only when set);
//   4. known latency before unknown, then lower latency first;
//   5. the given order.
function rank(members, config) {
  const preferring = config.preferLabels.length > 0;
  const keyed = members.map((m, index) => {
    const latency = m.latencyUs;
    const known = latency !== null && latency !== undefined;
    return {
      m,
      unhealthy: m.healthy ? 0 : 1,
      demoted: m.healthy && known && config.maxLatencyUs !== null && latency > config.maxLatencyUs ? 1 : 0,
      notPreferred: preferring && !hasLabels(m, config.preferLabels) ? 1 : 0,
      unknown: known ? 0 : 1,
      latency: known ? latency : 0,
      index,
    };
  });
  keyed.sort(
    (a, b) =>
      a.unhealthy - b.unhealthy ||
      a.demoted - b.demoted ||
      a.notPreferred - b.notPreferred ||
      a.unknown - b.unknown ||
      a.latency - b.latency ||
      a.index - b.index,
  );
  return keyed.map((k) => k.m);
}

export const routing = {
  route(_req, _obj, members) {
    const config = currentConfig();
    if (members.length === 0) {
      fail("unavailable", "no members to route to");
    }
    return rank(members, config).map((m) => m.name);
  },
};

export const placement = {
  place(_req, obj, members) {
    const config = currentConfig();
    const best = rank(members, config)[0];
    if (best === undefined || !best.healthy) {
      fail("unavailable", `no healthy member to write ${obj.bucket}/${obj.key} to`);
    }
    return [best.name];
  },
};

export const tiering = {
  tier(_obj, _current, _members) {
    currentConfig();
    return { tag: "keep" };
  },
};
