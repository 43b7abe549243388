// prefix-placement: a Switchyard policy in C.
//
// The configuration is a list of rules, one a line, keyed by the object key's prefix:
//
//     logs/              = tier=cold            # writes under logs/ to a member labelled tier=cold
//     db/                = eu-s3, tier=backup   # mirrored: eu-s3 and a member labelled tier=backup
//     *                  = tier=hot             # every other key
//     logs/  after 30d   = tier=archive         # tiering: older than 30 days, move
//     tmp/   after 7d    = delete               # tiering: older than 7 days, delete
//
// The longest matching prefix decides (`*` only when nothing else matches). Writes go to one
// member per target (a named member, or the first healthy member with the label); reads try
// healthy members the key's rule names first, then the other healthy ones, fastest first, and
// unhealthy ones last; tiering applies the oldest `after` age the object has reached.
//
// Memory, per the canonical ABI: every argument is the callee's (freed here with the generated
// `*_free` helpers once the answer no longer points into it), and every answer is a fresh heap
// copy that the generated post-return function frees after the host has read it. Nothing here
// uses stdio: it would import WASI, which this policy has no use for.

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

typedef switchyard_policy_types_member_t member_t;
typedef switchyard_policy_types_object_t object_t;
typedef switchyard_policy_types_policy_error_t policy_error_t;
typedef switchyard_policy_types_tier_action_t tier_action_t;

#define INVALID_INPUT SWITCHYARD_POLICY_TYPES_POLICY_ERROR_INVALID_INPUT
#define UNAVAILABLE SWITCHYARD_POLICY_TYPES_POLICY_ERROR_UNAVAILABLE

// ---------------------------------------------------------------------------------------------
// Strings: views into bytes someone else owns, and a growable text for messages.

typedef struct {
    const char *ptr;
    size_t len;
} view_t;

static view_t view_of(const policy_string_t *s) {
    return (view_t){(const char *)s->ptr, s->len};
}

static view_t view_cstr(const char *s) {
    return (view_t){s, strlen(s)};
}

static bool view_eq(view_t a, view_t b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool view_is(view_t a, const char *s) {
    return view_eq(a, view_cstr(s));
}

static bool starts_with(view_t s, view_t prefix) {
    return s.len >= prefix.len && (prefix.len == 0 || memcmp(s.ptr, prefix.ptr, prefix.len) == 0);
}

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

static view_t trim(view_t v) {
    while (v.len > 0 && is_space(v.ptr[0])) {
        v.ptr++;
        v.len--;
    }
    while (v.len > 0 && is_space(v.ptr[v.len - 1])) {
        v.len--;
    }
    return v;
}

static bool has_space(view_t v) {
    for (size_t i = 0; i < v.len; i++) {
        if (is_space(v.ptr[i])) {
            return true;
        }
    }
    return false;
}

// The next whitespace-separated word of `*rest` (empty when there is none).
static view_t next_word(view_t *rest) {
    view_t v = trim(*rest);
    size_t n = 0;
    while (n < v.len && !is_space(v.ptr[n])) {
        n++;
    }
    *rest = (view_t){v.ptr + n, v.len - n};
    return (view_t){v.ptr, n};
}

// Running out of memory traps, as the generated glue's cabi_realloc does: the host reports a
// trap past the memory limit as the limit.
static void *grow(void *ptr, size_t size) {
    void *p = realloc(ptr, size == 0 ? 1 : size);
    if (p == NULL) {
        abort();
    }
    return p;
}

static void *zeroed(size_t count, size_t size) {
    void *p = calloc(count == 0 ? 1 : count, size);
    if (p == NULL) {
        abort();
    }
    return p;
}

typedef struct {
    char *ptr;
    size_t len, cap;
} text_t;

static void add(text_t *t, view_t v) {
    if (t->len + v.len > t->cap) {
        size_t cap = t->cap == 0 ? 64 : t->cap;
        while (cap < t->len + v.len) {
            cap *= 2;
        }
        t->ptr = grow(t->ptr, cap);
        t->cap = cap;
    }
    if (v.len > 0) {
        memcpy(t->ptr + t->len, v.ptr, v.len);
    }
    t->len += v.len;
}

static void add_str(text_t *t, const char *s) {
    add(t, view_cstr(s));
}

// `v` in backquotes, as names appear in messages.
static void add_quoted(text_t *t, view_t v) {
    add_str(t, "`");
    add(t, v);
    add_str(t, "`");
}

static void add_u64(text_t *t, uint64_t n) {
    char digits[20];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    add(t, (view_t){digits + i, sizeof digits - i});
}

// A heap copy of `v` for an answer: the generated post-return function frees it.
static policy_string_t answer_string(view_t v) {
    policy_string_t s;
    policy_string_dup_n(&s, v.ptr, v.len);
    return s;
}

// ---------------------------------------------------------------------------------------------
// Refusals: a policy-error kind and its message.

typedef struct {
    uint8_t kind;
    bool config;    // the configuration is at fault: said in the log too
    text_t message;
} refusal_t;

// Starts a refusal of `kind`; the caller adds the message.
static text_t *refuse(refusal_t *r, uint8_t kind) {
    r->kind = kind;
    r->config = false;
    r->message.len = 0;
    return &r->message;
}

// Starts an `invalid-input` refusal that blames the configuration.
static text_t *refuse_config(refusal_t *r) {
    text_t *t = refuse(r, INVALID_INPUT);
    r->config = true;
    add_str(t, "invalid prefix-placement configuration: ");
    return t;
}

static void log_line(switchyard_policy_host_log_level_t level, const text_t *t) {
    // The host copies the message: it stays ours to free.
    policy_string_t message = {(uint8_t *)t->ptr, t->len};
    switchyard_policy_host_log(level, &message);
}

// Hands the refusal's message over to `err`: the host frees it (post-return).
static bool to_policy_error(refusal_t *r, policy_error_t *err) {
    if (r->config) {
        // A broken configuration fails every call: the operator reads it in the log rather
        // than in each 503.
        log_line(SWITCHYARD_POLICY_HOST_LOG_LEVEL_WARN, &r->message);
    }
    err->tag = r->kind;
    policy_string_t message = {(uint8_t *)r->message.ptr, r->message.len};
    if (message.len == 0) {
        free(r->message.ptr);
        message.ptr = NULL;
    }
    switch (r->kind) {
    case INVALID_INPUT:
        err->val.invalid_input = message;
        break;
    case UNAVAILABLE:
        err->val.unavailable = message;
        break;
    default:
        err->tag = SWITCHYARD_POLICY_TYPES_POLICY_ERROR_OTHER;
        err->val.other = message;
        break;
    }
    r->message = (text_t){0};
    return false;
}

// ---------------------------------------------------------------------------------------------
// The configuration.

typedef enum {
    TARGET_MEMBER, // a member by name
    TARGET_LABEL,  // the first healthy member with label `name` = `value`
    TARGET_DELETE, // tiering only: delete the object
} target_kind_t;

typedef struct {
    target_kind_t kind;
    view_t name;
    view_t value;
} target_t;

typedef struct {
    view_t prefix;
    bool any;         // `*`: every key, behind every real prefix
    bool after;       // a tiering rule: `PREFIX after AGE = TARGET`
    uint64_t age;     // seconds, for tiering rules
    size_t first;     // its targets: config.targets[first .. first + count)
    size_t count;
    size_t line;
} rule_t;

typedef struct {
    policy_string_t text; // host::config(), which the views below point into
    rule_t *rules;
    size_t rule_count;
    target_t *targets;
    size_t target_count;
} config_t;

static void config_free(config_t *c) {
    policy_string_free(&c->text);
    free(c->rules);
    free(c->targets);
    *c = (config_t){0};
}

static text_t *config_error(refusal_t *r, size_t line) {
    text_t *t = refuse_config(r);
    add_str(t, "line ");
    add_u64(t, line);
    add_str(t, ": ");
    return t;
}

// `30d`: a number and one of s, m, h, d, w.
static bool parse_age(view_t v, uint64_t *seconds) {
    if (v.len < 2) {
        return false;
    }
    uint64_t unit;
    switch (v.ptr[v.len - 1]) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 604800; break;
    default: return false;
    }
    uint64_t n = 0;
    for (size_t i = 0; i + 1 < v.len; i++) {
        char c = v.ptr[i];
        if (c < '0' || c > '9' || n > (UINT64_MAX - (uint64_t)(c - '0')) / 10) {
            return false;
        }
        n = n * 10 + (uint64_t)(c - '0');
    }
    if (n > UINT64_MAX / unit) {
        return false;
    }
    *seconds = n * unit;
    return true;
}

static bool same_prefix(const rule_t *a, const rule_t *b) {
    return a->any == b->any && view_eq(a->prefix, b->prefix);
}

static bool same_target(const target_t *a, const target_t *b) {
    return a->kind == b->kind && view_eq(a->name, b->name) && view_eq(a->value, b->value);
}

static const char EXPECTED[] = "expected `PREFIX = TARGET` or `PREFIX after AGE = TARGET`";
static const char DELETE_ONLY[] =
    "`delete` is for tiering rules only (`PREFIX after AGE = delete`)";

// One line: `PREFIX [after AGE] = TARGET[, TARGET...]`, already without its comment.
static bool parse_rule(config_t *c, view_t line, size_t number, refusal_t *r) {
    const char *eq = memchr(line.ptr, '=', line.len);
    if (eq == NULL) {
        add_str(config_error(r, number), EXPECTED);
        return false;
    }
    view_t left = {line.ptr, (size_t)(eq - line.ptr)};
    view_t right = {eq + 1, line.len - (size_t)(eq - line.ptr) - 1};

    rule_t rule = {.line = number, .first = c->target_count};
    view_t rest = left;
    rule.prefix = next_word(&rest);
    view_t word = next_word(&rest);
    if (rule.prefix.len == 0) {
        add_str(config_error(r, number), "no prefix before `=` (use `*` for every key)");
        return false;
    }
    rule.any = view_is(rule.prefix, "*");
    if (word.len > 0) {
        view_t age = next_word(&rest);
        if (!view_is(word, "after") || age.len == 0 || next_word(&rest).len > 0) {
            add_str(config_error(r, number), EXPECTED);
            return false;
        }
        if (!parse_age(age, &rule.age)) {
            text_t *t = config_error(r, number);
            add_quoted(t, age);
            add_str(t, " is not an age (a number and s, m, h, d or w, e.g. `30d`)");
            return false;
        }
        rule.after = true;
    }

    // The targets, comma-separated.
    while (true) {
        const char *comma = memchr(right.ptr, ',', right.len);
        size_t len = comma == NULL ? right.len : (size_t)(comma - right.ptr);
        view_t item = trim((view_t){right.ptr, len});
        target_t target = {.kind = TARGET_MEMBER, .name = item};
        const char *label_eq = memchr(item.ptr, '=', item.len);
        if (item.len == 0) {
            add_str(config_error(r, number), "empty target (a member name or LABEL=VALUE)");
            return false;
        }
        if (has_space(item)) {
            text_t *t = config_error(r, number);
            add_quoted(t, item);
            add_str(t, " is not a member name or LABEL=VALUE");
            return false;
        }
        if (label_eq != NULL) {
            target.kind = TARGET_LABEL;
            target.name = (view_t){item.ptr, (size_t)(label_eq - item.ptr)};
            target.value = (view_t){label_eq + 1, item.len - target.name.len - 1};
            if (target.name.len == 0 || target.value.len == 0) {
                text_t *t = config_error(r, number);
                add_quoted(t, item);
                add_str(t, " is not LABEL=VALUE");
                return false;
            }
        } else if (view_is(item, "delete")) {
            target.kind = TARGET_DELETE;
        }
        for (size_t i = rule.first; i < c->target_count; i++) {
            if (same_target(&c->targets[i], &target)) {
                text_t *t = config_error(r, number);
                add_quoted(t, item);
                add_str(t, " is given twice");
                return false;
            }
        }
        c->targets[c->target_count++] = target;
        if (comma == NULL) {
            break;
        }
        right = (view_t){comma + 1, right.len - len - 1};
    }
    rule.count = c->target_count - rule.first;

    if (rule.after && rule.count != 1) {
        add_str(config_error(r, number),
                "a tiering rule has one target (a member, LABEL=VALUE or `delete`)");
        return false;
    }
    if (!rule.after) {
        for (size_t i = rule.first; i < c->target_count; i++) {
            if (c->targets[i].kind == TARGET_DELETE) {
                add_str(config_error(r, number), DELETE_ONLY);
                return false;
            }
        }
    }
    for (size_t i = 0; i < c->rule_count; i++) {
        const rule_t *other = &c->rules[i];
        if (other->after == rule.after && same_prefix(other, &rule) &&
            (!rule.after || other->age == rule.age)) {
            text_t *t = config_error(r, number);
            add_str(t, "repeats the rule of line ");
            add_u64(t, other->line);
            add_str(t, " for ");
            add_quoted(t, rule.prefix);
            return false;
        }
    }
    c->rules[c->rule_count++] = rule;
    return true;
}

// Reads host::config() into `c`. An invalid configuration is `invalid-input` on every call.
static bool config_load(config_t *c, refusal_t *r) {
    *c = (config_t){0};
    switchyard_policy_host_config(&c->text);
    view_t text = view_of(&c->text);

    // At most one rule per line and one target per line or comma: one allocation each.
    size_t lines = 1, commas = 0;
    for (size_t i = 0; i < text.len; i++) {
        lines += text.ptr[i] == '\n';
        commas += text.ptr[i] == ',';
    }
    c->rules = grow(NULL, lines * sizeof *c->rules);
    c->targets = grow(NULL, (lines + commas) * sizeof *c->targets);

    size_t number = 0;
    view_t rest = text;
    while (rest.len > 0) {
        const char *nl = memchr(rest.ptr, '\n', rest.len);
        size_t len = nl == NULL ? rest.len : (size_t)(nl - rest.ptr);
        view_t line = {rest.ptr, len};
        rest = nl == NULL ? (view_t){rest.ptr + len, 0} : (view_t){nl + 1, rest.len - len - 1};
        number++;
        // A comment starts with `#` at the start of the line or after whitespace.
        for (size_t i = 0; i < line.len; i++) {
            if (line.ptr[i] == '#' && (i == 0 || is_space(line.ptr[i - 1]))) {
                line.len = i;
                break;
            }
        }
        line = trim(line);
        if (line.len > 0 && !parse_rule(c, line, number, r)) {
            return false;
        }
    }
    if (c->rule_count == 0) {
        add_str(refuse_config(r), "no rules: write rules such as `logs/ = tier=cold`, one a "
                                  "line (see the plugin's README)");
        return false;
    }
    return true;
}

// The configuration, loaded by an instance's first call and kept: an instance's
// host::config() never changes (a new configuration comes with new instances), and
// parsing it on every call cost more than the decision. An invalid one is read again by
// every call, so that each refusal says why.
static config_t loaded;
static bool is_loaded;

static const config_t *config_get(refusal_t *r) {
    if (!is_loaded) {
        if (!config_load(&loaded, r)) {
            config_free(&loaded);
            return NULL;
        }
        is_loaded = true;
    }
    return &loaded;
}

// The rule whose prefix is the longest that `key` starts with, among placement rules
// (`after` false) or tiering rules; `*` only when no prefix matches. NULL when none does.
static const rule_t *best_rule(const config_t *c, view_t key, bool after) {
    const rule_t *best = NULL;
    for (size_t i = 0; i < c->rule_count; i++) {
        const rule_t *rule = &c->rules[i];
        if (rule->after != after || !(rule->any || starts_with(key, rule->prefix))) {
            continue;
        }
        if (best == NULL || (best->any && !rule->any) ||
            (!best->any && !rule->any && rule->prefix.len > best->prefix.len)) {
            best = rule;
        }
    }
    return best;
}

// ---------------------------------------------------------------------------------------------
// Members.

static bool has_label(const member_t *m, view_t name, view_t value) {
    for (size_t i = 0; i < m->labels.len; i++) {
        const policy_tuple2_string_string_t *l = &m->labels.ptr[i];
        if (view_eq(view_of(&l->f0), name) && view_eq(view_of(&l->f1), value)) {
            return true;
        }
    }
    return false;
}

static bool matches(const member_t *m, const target_t *t) {
    switch (t->kind) {
    case TARGET_MEMBER: return view_eq(view_of(&m->name), t->name);
    case TARGET_LABEL: return has_label(m, t->name, t->value);
    default: return false;
    }
}

static void add_target(text_t *t, const target_t *target) {
    if (target->kind == TARGET_LABEL) {
        add(t, target->name);
        add_str(t, "=");
        add(t, target->value);
    } else {
        add(t, target->name);
    }
}

// The member for one target: `taken` members are skipped (each target of a mirrored write is a
// different member). A named member missing from the bucket is a configuration error; an
// unhealthy one, or no healthy member with the label, is `unavailable`.
static bool resolve(const rule_t *rule, const target_t *target, const member_t *members, size_t n,
                    const bool *taken, size_t *chosen, refusal_t *r) {
    bool seen = false;
    for (size_t i = 0; i < n; i++) {
        if (!matches(&members[i], target) || taken[i]) {
            continue;
        }
        seen = true;
        if (members[i].healthy) {
            *chosen = i;
            return true;
        }
    }
    text_t *t;
    if (target->kind == TARGET_MEMBER && !seen) {
        t = refuse_config(r);
        add_str(t, "line ");
        add_u64(t, rule->line);
        add_str(t, " names member ");
        add_quoted(t, target->name);
        add_str(t, ", which this bucket does not have");
        return false;
    }
    t = refuse(r, UNAVAILABLE);
    if (target->kind == TARGET_MEMBER) {
        add_str(t, "member ");
        add_quoted(t, target->name);
        add_str(t, " is unhealthy");
    } else {
        add_str(t, seen ? "no healthy member labelled " : "no member labelled ");
        add_target(t, target);
        if (rule->count > 1) {
            add_str(t, " besides the other targets");
        }
    }
    add_str(t, " (line ");
    add_u64(t, rule->line);
    add_str(t, ")");
    return false;
}

// ---------------------------------------------------------------------------------------------
// Decisions.

static bool place(const config_t *c, const object_t *obj, const member_t *members, size_t n,
                  policy_list_string_t *ret, refusal_t *r) {
    view_t key = view_of(&obj->key);
    const rule_t *rule = best_rule(c, key, false);
    if (rule == NULL) {
        text_t *t = refuse(r, INVALID_INPUT);
        add_str(t, "no prefix-placement rule matches key ");
        add_quoted(t, key);
        add_str(t, " (add a `*` rule for every other key)");
        return false;
    }
    bool *taken = zeroed(n, sizeof *taken);
    size_t *chosen = zeroed(rule->count, sizeof *chosen);
    bool ok = true;
    // Named members first, so that `tier=hot, hot-1` mirrors hot-1 and another hot member.
    for (int pass = 0; pass < 2 && ok; pass++) {
        for (size_t i = 0; i < rule->count && ok; i++) {
            const target_t *target = &c->targets[rule->first + i];
            if ((target->kind == TARGET_MEMBER) != (pass == 0)) {
                continue;
            }
            ok = resolve(rule, target, members, n, taken, &chosen[i], r);
            if (ok) {
                taken[chosen[i]] = true;
            }
        }
    }
    if (ok) {
        ret->len = rule->count;
        ret->ptr = grow(NULL, rule->count * sizeof *ret->ptr);
        for (size_t i = 0; i < rule->count; i++) {
            ret->ptr[i] = answer_string(view_of(&members[chosen[i]].name));
        }
        // The gateway logs every decision with its answer (at debug); a line of ours is for
        // what is worth a look: a key no prefix claims. A line in every decision cost a
        // fifth of it (docs/policies.md).
        if (rule->any) {
            text_t line = {0};
            add_str(&line, "key ");
            add_quoted(&line, key);
            add_str(&line, " matches no prefix: the `*` rule (line ");
            add_u64(&line, rule->line);
            add_str(&line, ") places it");
            log_line(SWITCHYARD_POLICY_HOST_LOG_LEVEL_DEBUG, &line);
            free(line.ptr);
        }
    }
    free(taken);
    free(chosen);
    return ok;
}

// Lower ranks are tried first: healthy members the key's rule names, other healthy members,
// then unhealthy ones; among healthy members, the fastest first (no latency yet: last).
typedef struct {
    size_t index;
    int group;
    uint64_t latency;
} rank_t;

static bool before(const rank_t *a, const rank_t *b) {
    if (a->group != b->group) {
        return a->group < b->group;
    }
    if (a->group < 2 && a->latency != b->latency) {
        return a->latency < b->latency;
    }
    return a->index < b->index;
}

static bool route(const config_t *c, const object_t *obj, const member_t *members, size_t n,
                  policy_list_string_t *ret, refusal_t *r) {
    if (n == 0) {
        add_str(refuse(r, UNAVAILABLE), "the bucket has no members");
        return false;
    }
    const rule_t *rule = best_rule(c, view_of(&obj->key), false);
    rank_t *ranks = grow(NULL, n * sizeof *ranks);
    for (size_t i = 0; i < n; i++) {
        bool named = false;
        for (size_t j = 0; rule != NULL && j < rule->count && !named; j++) {
            named = matches(&members[i], &c->targets[rule->first + j]);
        }
        ranks[i] = (rank_t){
            .index = i,
            .group = !members[i].healthy ? 2 : named ? 0 : 1,
            .latency = members[i].latency_us.is_some ? members[i].latency_us.val : UINT64_MAX,
        };
        // Insertion sort: members are a handful.
        for (size_t j = i; j > 0 && before(&ranks[j], &ranks[j - 1]); j--) {
            rank_t swap = ranks[j];
            ranks[j] = ranks[j - 1];
            ranks[j - 1] = swap;
        }
    }
    ret->len = n;
    ret->ptr = grow(NULL, n * sizeof *ret->ptr);
    for (size_t i = 0; i < n; i++) {
        ret->ptr[i] = answer_string(view_of(&members[ranks[i].index].name));
    }
    free(ranks);
    return true;
}

static const member_t *find_member(const member_t *members, size_t n, view_t name) {
    for (size_t i = 0; i < n; i++) {
        if (view_eq(view_of(&members[i].name), name)) {
            return &members[i];
        }
    }
    return NULL;
}

static bool tier(const config_t *c, const object_t *obj, view_t current, const member_t *members,
                 size_t n, tier_action_t *ret, refusal_t *r) {
    ret->tag = SWITCHYARD_POLICY_TYPES_TIER_ACTION_KEEP;
    view_t key = view_of(&obj->key);
    const rule_t *group = best_rule(c, key, true);
    if (group == NULL || !obj->age_seconds.is_some) {
        return true;
    }
    // The most specific prefix's tiering rules decide alone: the oldest age reached applies.
    const rule_t *rule = NULL;
    for (size_t i = 0; i < c->rule_count; i++) {
        const rule_t *candidate = &c->rules[i];
        if (candidate->after && same_prefix(candidate, group) &&
            candidate->age <= obj->age_seconds.val &&
            (rule == NULL || candidate->age > rule->age)) {
            rule = candidate;
        }
    }
    if (rule == NULL) {
        return true;
    }
    const target_t *target = &c->targets[rule->first];
    if (target->kind == TARGET_DELETE) {
        ret->tag = SWITCHYARD_POLICY_TYPES_TIER_ACTION_DELETE;
        return true;
    }
    const member_t *here = find_member(members, n, current);
    if ((target->kind == TARGET_MEMBER && view_eq(current, target->name)) ||
        (here != NULL && matches(here, target))) {
        return true; // already there
    }
    bool *taken = zeroed(n, sizeof *taken);
    size_t chosen;
    bool ok = resolve(rule, target, members, n, taken, &chosen, r);
    free(taken);
    if (ok) {
        ret->tag = SWITCHYARD_POLICY_TYPES_TIER_ACTION_MOVE_TO;
        ret->val.move_to = answer_string(view_of(&members[chosen].name));
    }
    return ok;
}

// ---------------------------------------------------------------------------------------------
// The exports: decide by the configuration (loaded once), then free the arguments.
// The answer (`ret`, or the message in `err`) holds copies only.

bool exports_switchyard_policy_placement_place(
    exports_switchyard_policy_placement_request_t *req,
    exports_switchyard_policy_placement_object_t *obj,
    exports_switchyard_policy_placement_list_member_t *members, policy_list_string_t *ret,
    exports_switchyard_policy_placement_policy_error_t *err) {
    refusal_t r = {0};
    const config_t *c = config_get(&r);
    bool ok = c != NULL && place(c, obj, members->ptr, members->len, ret, &r);
    exports_switchyard_policy_placement_request_free(req);
    exports_switchyard_policy_placement_object_free(obj);
    exports_switchyard_policy_placement_list_member_free(members);
    return ok || to_policy_error(&r, err);
}

bool exports_switchyard_policy_routing_route(
    exports_switchyard_policy_routing_request_t *req,
    exports_switchyard_policy_routing_object_t *obj,
    exports_switchyard_policy_routing_list_member_t *members, policy_list_string_t *ret,
    exports_switchyard_policy_routing_policy_error_t *err) {
    refusal_t r = {0};
    const config_t *c = config_get(&r);
    bool ok = c != NULL && route(c, obj, members->ptr, members->len, ret, &r);
    exports_switchyard_policy_routing_request_free(req);
    exports_switchyard_policy_routing_object_free(obj);
    exports_switchyard_policy_routing_list_member_free(members);
    return ok || to_policy_error(&r, err);
}

bool exports_switchyard_policy_tiering_tier(
    exports_switchyard_policy_tiering_object_t *obj, policy_string_t *current,
    exports_switchyard_policy_tiering_list_member_t *members,
    exports_switchyard_policy_tiering_tier_action_t *ret,
    exports_switchyard_policy_tiering_policy_error_t *err) {
    refusal_t r = {0};
    const config_t *c = config_get(&r);
    bool ok = c != NULL &&
              tier(c, obj, view_of(current), members->ptr, members->len, ret, &r);
    exports_switchyard_policy_tiering_object_free(obj);
    policy_string_free(current);
    exports_switchyard_policy_tiering_list_member_free(members);
    return ok || to_policy_error(&r, err);
}
