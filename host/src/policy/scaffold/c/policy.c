// {{name}}: a Switchyard policy (WIT `switchyard:policy@0.2.0`). See README.md.
//
// Bindings are generated into bindings/ by build.sh (policy.h, policy.c and the world's
// component-type object). The canonical ABI's rules in C: every argument is owned by this
// code and freed here (the `*_free` helpers), every answer is a heap copy the host frees
// after reading it, and nothing may use stdio (it would import WASI preview 1).

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

// Whether `s` equals the nul-terminated `lit`.
static bool eq(const policy_string_t *s, const char *lit) {
    size_t n = strlen(lit);
    return s->len == n && memcmp(s->ptr, lit, n) == 0;
}

// Operations that change the bucket.
static const char *const WRITES[] = {
    "PutObject", "CopyObject", "PostObject", "CreateMultipartUpload", "UploadPart",
    "UploadPartCopy", "CompleteMultipartUpload", "DeleteObject", "DeleteObjects",
};

static bool is_write(const policy_string_t *op) {
    for (size_t i = 0; i < sizeof WRITES / sizeof WRITES[0]; i++) {
        if (eq(op, WRITES[i])) {
            return true;
        }
    }
    return false;
}

static void count(const char *verdict) {
    // Borrowed strings (policy_string_set): the host copies them during the call.
    policy_string_t name;
    policy_string_set(&name, "admissions");
    policy_tuple2_string_string_t label;
    policy_string_set(&label.f0, "verdict");
    policy_string_set(&label.f1, verdict);
    policy_list_tuple2_string_string_t labels = {.ptr = &label, .len = 1};
    switchyard_policy_host_counter_add(&name, &labels, 1);
}

bool exports_switchyard_policy_admission_admit(
    exports_switchyard_policy_admission_request_t *req,
    exports_switchyard_policy_admission_object_t *obj,
    exports_switchyard_policy_admission_verdict_t *ret,
    exports_switchyard_policy_admission_policy_error_t *err) {
    (void)err;
    bool deny = !req->principal.is_some && is_write(&req->operation);
    count(deny ? "deny" : "allow");
    if (deny) {
        ret->tag = SWITCHYARD_POLICY_TYPES_VERDICT_DENY;
        ret->val.deny.code = SWITCHYARD_POLICY_TYPES_DENY_CODE_ACCESS_DENIED;
        policy_string_dup(&ret->val.deny.message, "anonymous writes are not accepted");
    } else {
        ret->tag = SWITCHYARD_POLICY_TYPES_VERDICT_ALLOW;
    }
    exports_switchyard_policy_admission_request_free(req);
    exports_switchyard_policy_admission_object_free(obj);
    return true;
}

bool exports_switchyard_policy_placement_place(
    exports_switchyard_policy_placement_request_t *req,
    exports_switchyard_policy_placement_object_t *obj,
    exports_switchyard_policy_placement_list_member_t *members,
    policy_list_string_t *ret,
    exports_switchyard_policy_placement_policy_error_t *err) {
    bool ok = false;
    for (size_t i = 0; i < members->len; i++) {
        if (members->ptr[i].healthy) {
            ret->len = 1;
            ret->ptr = malloc(sizeof(policy_string_t));
            policy_string_dup_n(&ret->ptr[0], (const char *)members->ptr[i].name.ptr,
                                members->ptr[i].name.len);
            ok = true;
            break;
        }
    }
    if (!ok) {
        err->tag = SWITCHYARD_POLICY_TYPES_POLICY_ERROR_UNAVAILABLE;
        policy_string_dup(&err->val.unavailable, "no healthy member");
    }
    exports_switchyard_policy_placement_request_free(req);
    exports_switchyard_policy_placement_object_free(obj);
    exports_switchyard_policy_placement_list_member_free(members);
    return ok;
}

bool exports_switchyard_policy_routing_route(
    exports_switchyard_policy_routing_request_t *req,
    exports_switchyard_policy_routing_object_t *obj,
    exports_switchyard_policy_routing_list_member_t *members,
    exports_switchyard_policy_routing_route_answer_t *ret,
    exports_switchyard_policy_routing_policy_error_t *err) {
    (void)err;
    size_t n = 0;
    ret->members.ptr = malloc(members->len * sizeof(policy_string_t) + 1);
    // Healthy members first, then the others, each group in configured order.
    for (int healthy = 1; healthy >= 0; healthy--) {
        for (size_t i = 0; i < members->len; i++) {
            if (members->ptr[i].healthy == (bool)healthy) {
                policy_string_dup_n(&ret->members.ptr[n++],
                                    (const char *)members->ptr[i].name.ptr,
                                    members->ptr[i].name.len);
            }
        }
    }
    ret->members.len = n;
    ret->strict = false;
    exports_switchyard_policy_routing_request_free(req);
    exports_switchyard_policy_routing_object_free(obj);
    exports_switchyard_policy_routing_list_member_free(members);
    return true;
}

bool exports_switchyard_policy_tiering_tier(
    exports_switchyard_policy_tiering_object_t *obj,
    policy_string_t *current,
    exports_switchyard_policy_tiering_list_member_t *members,
    exports_switchyard_policy_tiering_tier_action_t *ret,
    exports_switchyard_policy_tiering_policy_error_t *err) {
    (void)err;
    ret->tag = SWITCHYARD_POLICY_TYPES_TIER_ACTION_KEEP;
    exports_switchyard_policy_tiering_object_free(obj);
    policy_string_free(current);
    exports_switchyard_policy_tiering_list_member_free(members);
    return true;
}
