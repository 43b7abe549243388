//! Policy components built from WebAssembly text by the tests themselves: fixed-answer
//! policies for routing tests and hot reload, and hostile ones (loops, traps, memory
//! bombs, wrong worlds). No guest toolchain is needed.

use std::path::Path;

use wit_component::StringEncoding;

use crate::harness::repo_root;

/// Turns a core module (WAT) into a component of `world` from the WIT at `wit_dir`.
pub fn component(core_wat: &str, wit_dir: &Path, world: &str) -> Vec<u8> {
    let mut module = wat::parse_str(core_wat).expect("valid WAT");
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(wit_dir).expect("valid WIT");
    let world = resolve
        .select_world(&[pkg], Some(world))
        .expect("world exists");
    wit_component::embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
        .expect("metadata");
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .expect("module")
        .encode()
        .expect("component")
}

fn policy_wit() -> std::path::PathBuf {
    repo_root().join("wit/switchyard-policy@0.1.0")
}

/// The memory of the policies below, of `pages` 64 KiB pages, and their allocator: a bump
/// allocator from 8192 (the host's copies of the arguments land there), growing the memory
/// as needed.
fn memory(pages: usize) -> String {
    format!(
        r#"(memory (export "memory") {pages})
  (global $heap (mut i32) (i32.const 8192))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.div_u (local.get 3) (i32.const 65536)) (i32.const 1))))))
    (local.get $p))"#
    )
}

/// What a policy does when the object key starts with `evil`.
#[derive(Debug, Clone, Copy)]
pub enum Misbehaviour {
    /// Answer normally.
    None,
    /// Loop forever.
    Loop,
    /// Execute `unreachable`.
    Trap,
    /// Grow memory until refused, then crash.
    MemoryBomb,
    /// Wait an hour for a WASI monotonic-clock pollable with `pollable.block`, as a
    /// guest's `sleep` does: time spent in the host, where no epoch tick reaches it.
    SleepBlock,
    /// The same wait through `wasi:io/poll.poll` (what wasi-libc's `poll_oneoff` and
    /// Python's `time.sleep` come to).
    SleepPoll,
}

/// The WIT of a policy that also imports the WASI clock and poll interfaces it sleeps
/// with (tests/wit/sleeper).
fn sleeper_wit() -> std::path::PathBuf {
    repo_root().join("tests/wit/sleeper")
}

/// A policy that answers `answer` (member names separated by commas) to place and
/// route, and `keep` to tier, except that for keys starting with `evil` it misbehaves as
/// told.
pub fn fixed_policy(answer: &str, misbehave: Misbehaviour) -> Vec<u8> {
    let names: Vec<&str> = answer.split(',').collect();
    policy_component(&names, &TierAnswer::Keep, misbehave, 0)
}

/// A [`fixed_policy`] answering `answer` whose memory starts with `data_bytes` of data in
/// it (above its first 128 KiB): a component of about that size that needs about that
/// much memory before its first call, as one that carries a preloaded heap does.
pub fn heavy_policy(answer: &str, data_bytes: usize) -> Vec<u8> {
    let names: Vec<&str> = answer.split(',').collect();
    policy_component(&names, &TierAnswer::Keep, Misbehaviour::None, data_bytes)
}

/// What [`answering_policy`] answers to `tier`.
#[derive(Debug, Clone, Copy)]
pub enum TierAnswer<'a> {
    Keep,
    MoveTo(&'a str),
    CopyTo(&'a str),
    Delete,
}

/// A policy that answers the member names `answer` to place and route (none: an empty
/// list, which is an invalid answer) and `tier` to tier, whatever it is asked.
pub fn answering_policy(answer: &[&str], tier: TierAnswer<'_>) -> Vec<u8> {
    policy_component(answer, &tier, Misbehaviour::None, 0)
}

/// Keys are read from the canonical-ABI argument area: for place/route the object record
/// starts at offset 32 and its key's pointer is at +8; for tier at offset 0.
fn policy_component(
    names: &[&str],
    tier: &TierAnswer<'_>,
    misbehave: Misbehaviour,
    data_bytes: usize,
) -> Vec<u8> {
    let hostile = match misbehave {
        Misbehaviour::None => "",
        Misbehaviour::Loop => "(loop $l (br $l))",
        Misbehaviour::Trap => "unreachable",
        Misbehaviour::MemoryBomb => {
            "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 64)) (i32.const -1)))) unreachable"
        }
        // An hour, in nanoseconds; the pollable's handle at 2000, poll's answer at 2008.
        Misbehaviour::SleepBlock => "(call $block (call $sub (i64.const 3600000000000)))",
        Misbehaviour::SleepPoll => {
            "(i32.store (i32.const 2000) (call $sub (i64.const 3600000000000)))
             (call $poll (i32.const 2000) (i32.const 1) (i32.const 2008))"
        }
    };
    let sleeps = matches!(
        misbehave,
        Misbehaviour::SleepBlock | Misbehaviour::SleepPoll
    );
    let imports = if sleeps {
        r#"(import "wasi:clocks/monotonic-clock@0.2.0" "subscribe-duration" (func $sub (param i64) (result i32)))
  (import "wasi:io/poll@0.2.0" "[method]pollable.block" (func $block (param i32)))
  (import "wasi:io/poll@0.2.0" "poll" (func $poll (param i32 i32 i32)))"#
    } else {
        ""
    };
    // The answer list at 1040: one (ptr, len) per name; the names' bytes from 1280.
    let mut list = String::new();
    let mut bytes = String::new();
    let mut at = 1280usize;
    for n in names {
        list.push_str(&le32(at));
        list.push_str(&le32(n.len()));
        bytes.push_str(&escaped(n));
        at += n.len();
    }
    let count = le32(names.len());
    let tier_answer = tier_data(tier);
    let memory = memory(2 + data_bytes.div_ceil(65536));
    // Plain bytes: WAT's escapes would take the text to three times the data.
    let heavy = if data_bytes == 0 {
        String::new()
    } else {
        format!(r#"(data (i32.const 131072) "{}")"#, "a".repeat(data_bytes))
    };
    let wat = format!(
        r#"(module
  {imports}
  {memory}
  {heavy}
  ;; result<list<string>, policy-error>: ok, the list at 1040.
  (data (i32.const 1024) "\00\00\00\00\10\04\00\00{count}")
  (data (i32.const 1040) "{list}")
  (data (i32.const 1280) "{bytes}")
  {tier_answer}
  (func $evil (param $key_ptr_at i32) (result i32)
    (i32.eq (i32.load8_u (i32.load (local.get $key_ptr_at))) (i32.const 101)))
  (func (export "switchyard:policy/placement@0.1.0#place") (param $args i32) (result i32)
    (if (call $evil (i32.add (local.get $args) (i32.const 40))) (then {hostile}))
    (i32.const 1024))
  (func (export "switchyard:policy/routing@0.1.0#route") (param $args i32) (result i32)
    (if (call $evil (i32.add (local.get $args) (i32.const 40))) (then {hostile}))
    (i32.const 1024))
  (func (export "switchyard:policy/tiering@0.1.0#tier") (param $args i32) (result i32)
    (if (call $evil (i32.add (local.get $args) (i32.const 8))) (then {hostile}))
    (i32.const 1536))
)"#
    );
    let wit = if sleeps { sleeper_wit() } else { policy_wit() };
    component(&wat, &wit, "policy")
}

/// A policy that answers, to place and route, the first of the members it is given (a
/// valid answer whatever they are) and `tier` to tier. The parameters come through the
/// canonical-ABI argument area: the member list's (ptr, len) at offset 104, each member
/// a 48-byte record starting with its name's (ptr, len); the answer points at the name
/// where the host wrote it.
pub fn first_member_policy(tier: TierAnswer<'_>) -> Vec<u8> {
    let tier_answer = tier_data(&tier);
    let memory = memory(2);
    let wat = format!(
        r#"(module
  {memory}
  ;; result<list<string>, policy-error>: ok, a list of one string at 1040.
  (data (i32.const 1024) "\00\00\00\00\10\04\00\00\01\00\00\00")
  {tier_answer}
  (func $first (param $args i32) (result i32)
    (local $member i32)
    (local.set $member (i32.load (i32.add (local.get $args) (i32.const 104))))
    (i32.store (i32.const 1040) (i32.load (local.get $member)))
    (i32.store (i32.const 1044) (i32.load offset=4 (local.get $member)))
    (i32.const 1024))
  (func (export "switchyard:policy/placement@0.1.0#place") (param $args i32) (result i32)
    (call $first (local.get $args)))
  (func (export "switchyard:policy/routing@0.1.0#route") (param $args i32) (result i32)
    (call $first (local.get $args)))
  (func (export "switchyard:policy/tiering@0.1.0#tier") (param $args i32) (result i32)
    (i32.const 1536))
)"#
    );
    component(&wat, &policy_wit(), "policy")
}

/// The data segments of a `tier` answer: result<tier-action, policy-error> at 1536, ok
/// (0), then the tier-action at +4: its case (keep 0, move-to 1, copy-to 2, delete 3)
/// and a member name (ptr, len) at +8, whose bytes are at 1600.
fn tier_data(tier: &TierAnswer<'_>) -> String {
    let (case, target) = match tier {
        TierAnswer::Keep => (0, ""),
        TierAnswer::MoveTo(m) => (1, *m),
        TierAnswer::CopyTo(m) => (2, *m),
        TierAnswer::Delete => (3, ""),
    };
    format!(
        "(data (i32.const 1536) \"\\00\\00\\00\\00{}{}{}\")\n  (data (i32.const 1600) \"{}\")",
        le32(case),
        le32(1600),
        le32(target.len()),
        escaped(target)
    )
}

fn escaped(s: &str) -> String {
    s.bytes().map(|b| format!("\\{b:02x}")).collect()
}

/// A component of some other world: it must be refused.
pub fn wrong_world() -> Vec<u8> {
    let dir = tempfile_dir();
    std::fs::write(
        dir.join("other.wit"),
        "package other:thing@1.0.0;\nworld other { export run: func() -> u32; }\n",
    )
    .unwrap();
    let c = component(
        r#"(module (memory (export "memory") 1) (func (export "run") (result i32) (i32.const 7)))"#,
        &dir,
        "other",
    );
    let _ = std::fs::remove_dir_all(&dir);
    c
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "switchyard-wit-{}-{}",
        std::process::id(),
        uuid_like()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn uuid_like() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn le32(v: usize) -> String {
    u32::try_from(v)
        .expect("small")
        .to_le_bytes()
        .iter()
        .map(|b| format!("\\{b:02x}"))
        .collect()
}
