// Checks prefix-placement's memory ownership natively, under valgrind (see memcheck.sh).
//
// The host's side of the canonical ABI, imitated: every argument string and list is its own
// allocation (empty ones get a dangling pointer, as cabi_realloc gives for zero bytes, and must
// never be freed), the callee owns and frees them all, and the answer is freed afterwards with
// the generated `*_free` helpers, as the post-return functions do. host.config() hands out a
// fresh allocation each time, as the import's lowering does. A leak, a double free, a free of
// a dangling pointer or a read of freed memory fails the run.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

// Stand-ins for what the component model links in.
void __component_type_object_force_link_policy(void) {}

static const char *config_text;

void __wasm_import_switchyard_policy_host_config(uint8_t *ret) {
    size_t n = strlen(config_text);
    uint8_t *p = n ? malloc(n) : (uint8_t *)1;
    memcpy(p, config_text, n);
    *(uint8_t **)ret = p;
    *(size_t *)(ret + sizeof(void *)) = n;
}

void __wasm_import_switchyard_policy_host_log(int32_t level, uint8_t *ptr, size_t len) {
    printf("    log %d: %.*s\n", level, (int)len, (char *)ptr);
}

static void *const DANGLING = (void *)8;

static policy_string_t string(const char *c) {
    size_t n = strlen(c);
    policy_string_t s = {n ? malloc(n) : (uint8_t *)1, n};
    memcpy(s.ptr, c, n);
    return s;
}

typedef struct {
    const char *name, *tier;
    bool healthy;
    long latency; // < 0: none yet
} spec_t;

static spec_t every[] = {
    {"hot-fs", "hot", true, 300},     {"hot-s3", "hot", true, 900},
    {"cold-s3", "cold", true, 5000},  {"cold-gcs", "cold", true, -1},
    {"archive-s3", "archive", true, 20000}, {0},
};
static spec_t none[] = {{0}};
static spec_t sick[] = {{"cold-s3", "cold", false, 1}, {"archive-s3", "archive", false, 2}, {0}};

static switchyard_policy_types_member_t *members(const spec_t *specs, size_t *n) {
    for (*n = 0; specs[*n].name; (*n)++) {
    }
    switchyard_policy_types_member_t *m = *n ? malloc(*n * sizeof *m) : DANGLING;
    for (size_t i = 0; i < *n; i++) {
        m[i].name = string(specs[i].name);
        m[i].kind = string("s3");
        m[i].labels.len = 1;
        m[i].labels.ptr = malloc(sizeof *m[i].labels.ptr);
        m[i].labels.ptr[0].f0 = string("tier");
        m[i].labels.ptr[0].f1 = string(specs[i].tier);
        m[i].healthy = specs[i].healthy;
        m[i].latency_us.is_some = specs[i].latency >= 0;
        m[i].latency_us.val = (uint64_t)specs[i].latency;
    }
    return m;
}

static switchyard_policy_types_object_t object(const char *key, long age) {
    switchyard_policy_types_object_t o = {0};
    o.bucket = string("data");
    o.key = string(key);
    o.content_type.is_some = true;
    o.content_type.val = string("");
    o.metadata.ptr = DANGLING;
    o.age_seconds.is_some = age >= 0;
    o.age_seconds.val = (uint64_t)age;
    return o;
}

static switchyard_policy_types_request_t request(void) {
    switchyard_policy_types_request_t r = {0};
    r.operation = string("PutObject");
    r.principal.is_some = true;
    r.principal.val = string("app");
    return r;
}

static void show_names(const char *call, policy_list_string_t *names) {
    printf("  %s:", call);
    for (size_t i = 0; i < names->len; i++) {
        printf(" %.*s", (int)names->ptr[i].len, (char *)names->ptr[i].ptr);
    }
    printf("\n");
    policy_list_string_free(names);
}

static void show_error(const char *call, switchyard_policy_types_policy_error_t *e) {
    printf("  %s: error %d: %.*s\n", call, e->tag, (int)e->val.other.len,
           (char *)e->val.other.ptr);
    switchyard_policy_types_policy_error_free(e);
}

// place, route and tier for one key.
static void decide(const char *config, const char *key, long age, const spec_t *specs) {
    config_text = config;
    printf("%s (age %ld)\n", key, age);
    size_t n;
    switchyard_policy_types_policy_error_t err;
    policy_list_string_t names;

    switchyard_policy_types_request_t req = request();
    switchyard_policy_types_object_t obj = object(key, age);
    exports_switchyard_policy_placement_list_member_t placement = {members(specs, &n), 0};
    placement.len = n;
    if (exports_switchyard_policy_placement_place(&req, &obj, &placement, &names, &err)) {
        show_names("place", &names);
    } else {
        show_error("place", &err);
    }

    req = request();
    obj = object(key, age);
    exports_switchyard_policy_routing_list_member_t routing = {members(specs, &n), 0};
    routing.len = n;
    if (exports_switchyard_policy_routing_route(&req, &obj, &routing, &names, &err)) {
        show_names("route", &names);
    } else {
        show_error("route", &err);
    }

    obj = object(key, age);
    policy_string_t current = string("cold-s3");
    exports_switchyard_policy_tiering_list_member_t tiering = {members(specs, &n), 0};
    tiering.len = n;
    switchyard_policy_types_tier_action_t action;
    if (exports_switchyard_policy_tiering_tier(&obj, &current, &tiering, &action, &err)) {
        bool to = action.tag == SWITCHYARD_POLICY_TYPES_TIER_ACTION_MOVE_TO;
        printf("  tier: %d %.*s\n", action.tag, to ? (int)action.val.move_to.len : 0,
               to ? (char *)action.val.move_to.ptr : "");
        switchyard_policy_types_tier_action_free(&action);
    } else {
        show_error("tier", &err);
    }
}

int main(void) {
    const char *config = "# comment\n"
                         "logs/ = tier=cold\n"
                         "logs/audit/ = archive-s3 # trailing\r\n"
                         "db/ = hot-fs, tier=cold\n"
                         "* = tier=hot\n"
                         "logs/ after 30d = tier=archive\n"
                         "logs/ after 365d = delete\n"
                         "tmp/ after 7d = delete\n";
    decide(config, "logs/a", 40L * 86400, every);
    decide(config, "logs/audit/a", 400L * 86400, every);
    decide(config, "db/x", -1, every);
    decide(config, "tmp/x", 8L * 86400, every);
    decide(config, "", 0, every);
    decide(config, "logs/a", 40L * 86400, none);
    decide(config, "logs/a", 40L * 86400, sick);
    decide(config, "logs/audit/x", 40L * 86400, sick + 1);
    decide("db/ = tier=hot, hot-fs", "db/x", 0, every);
    decide("db/ = tier=hot, hot-fs", "db/x", 0, sick);
    decide("logs/ = tier=cold", "x", 0, every);
    decide("", "logs/a", 0, every);
    decide("a = b\nc d = e", "logs/a", 0, every);
    decide("a after 1y = x", "a", 0, every);
    decide("a = =", "a", 0, every);
    return 0;
}
