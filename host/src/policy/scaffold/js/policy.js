// {{name}}: a Switchyard policy (WIT `switchyard:policy@0.2.0`). See README.md.
//
// WIT values arrive as plain JS values: records with camelCase fields, `option<T>` as the
// value or `null`, tuples as arrays, enums as strings ("access-denied"), variants as
// `{ tag, val }`, integers (u64 too) as numbers. A `result` error is returned by throwing the
// `policy-error` variant (`{ tag: "unavailable", val: "..." }`); anything else thrown is a
// trap, which the host treats as a policy bug.

import host from "switchyard:policy/host@0.2.0";

// Operations that change the bucket.
const WRITES = new Set([
  "PutObject", "CopyObject", "PostObject", "CreateMultipartUpload", "UploadPart",
  "UploadPartCopy", "CompleteMultipartUpload", "DeleteObject", "DeleteObjects",
]);

export const admission = {
  admit(req, obj) {
    const deny = req.principal === null && WRITES.has(req.operation);
    host.counterAdd("admissions", [["verdict", deny ? "deny" : "allow"]], 1);
    if (deny) {
      return { tag: "deny", val: { code: "access-denied", message: "anonymous writes are not accepted" } };
    }
    return { tag: "allow" };
  },
};

export const placement = {
  place(req, obj, members) {
    const m = members.find((m) => m.healthy);
    if (!m) {
      throw { tag: "unavailable", val: "no healthy member" };
    }
    return [m.name];
  },
};

export const routing = {
  route(req, obj, members) {
    const healthy = members.filter((m) => m.healthy).map((m) => m.name);
    const sick = members.filter((m) => !m.healthy).map((m) => m.name);
    return { members: [...healthy, ...sick], strict: false };
  },
};

export const tiering = {
  tier(obj, current, members) {
    return { tag: "keep" };
  },
};
