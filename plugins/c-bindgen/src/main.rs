//! `c-bindgen WIT-DIR WORLD OUT-DIR`: writes the C bindings of `WORLD` in the WIT package at
//! `WIT-DIR` into `OUT-DIR`, as `wit-bindgen c` does: `NAME.h`, `NAME.c` and
//! `NAME_component_type.o` (the world's type as a custom section, which the linker must keep
//! so that `switchyard policy componentize` knows what the core module implements).
//!
//! It exists so the C plugins' builds need only this small workspace crate (built in seconds
//! with the plugins' lockfile) instead of `cargo install wit-bindgen-cli` (minutes). Files are
//! rewritten only when their contents change, so `make`-style rebuild checks stay quiet.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wit_bindgen_core::Files;
use wit_bindgen_core::wit_parser::Resolve;

fn generate(wit: &Path, world: &str, out: &Path) -> Result<Vec<PathBuf>, String> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .map_err(|e| format!("cannot read the WIT at {}: {e:#}", wit.display()))?;
    let world = resolve
        .select_world(&[package], Some(world))
        .map_err(|e| format!("{e:#}"))?;
    let mut files = Files::default();
    // The defaults are `wit-bindgen c`'s: UTF-8 strings, helpers, the component-type object.
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)
        .map_err(|e| format!("{e:#}"))?;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut written = Vec::new();
    for (name, contents) in files.iter() {
        let path = out.join(name);
        if std::fs::read(&path).is_ok_and(|old| old == contents) {
            continue;
        }
        std::fs::write(&path, contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [wit, world, out] = args.as_slice() else {
        eprintln!("usage: c-bindgen WIT-DIR WORLD OUT-DIR");
        return ExitCode::from(2);
    };
    match generate(Path::new(wit), world, Path::new(out)) {
        Ok(written) => {
            for path in written {
                eprintln!("c-bindgen: wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("c-bindgen: {e}");
            ExitCode::FAILURE
        }
    }
}
