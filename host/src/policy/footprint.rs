//! What a component needs before it runs: the linear memory its core modules start with.
//!
//! A memory starts at its declared minimum, which must hold the module's data segments, so
//! a component that carries a large heap image (a Python interpreter with its libraries
//! preloaded, say) needs that much memory before its first call. Above the policy's
//! memory limit the pooling allocator refused it while compiling, and the loader reported
//! the refusal as "not a WebAssembly component". It is measured here instead, before the
//! compilation (seconds for such a component) is spent on it.

/// The largest initial size, in bytes, of a memory that a core module inside `bytes`
/// defines; 0 when none defines one. None when `bytes` do not parse: compiling them says
/// why.
pub fn initial_memory(bytes: &[u8]) -> Option<u64> {
    let mut largest = 0u64;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::MemorySection(memories) = payload.ok()? {
            for memory in memories {
                let memory = memory.ok()?;
                let page = 1u64.checked_shl(memory.page_size_log2.unwrap_or(16))?;
                largest = largest.max(memory.initial.saturating_mul(page));
            }
        }
    }
    Some(largest)
}

/// `105119744` as `100.2 MiB`, for messages that give the exact count too.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module defining memories of `pages` 64 KiB pages each.
    fn module(pages: &[u16]) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        if !pages.is_empty() {
            let mut section = vec![u8::try_from(pages.len()).unwrap()];
            for p in pages {
                // Limits without a maximum, then the minimum as a two-byte LEB128.
                section.extend([0x00, (p & 0x7f) as u8 | 0x80, (p >> 7) as u8]);
            }
            m.extend([0x05, u8::try_from(section.len()).unwrap()]);
            m.extend(section);
        }
        m
    }

    /// A component holding `inner` as its one core module.
    fn component(inner: &[u8]) -> Vec<u8> {
        let mut c = b"\0asm\x0d\0\x01\0".to_vec();
        c.extend([0x01, u8::try_from(inner.len()).unwrap()]);
        c.extend(inner);
        c
    }

    #[test]
    fn the_largest_memory_of_any_module_counts() {
        assert_eq!(initial_memory(&module(&[])), Some(0));
        assert_eq!(initial_memory(&module(&[2])), Some(2 * 65536));
        // 1604 pages: the 105 MB component of the issue (100 MiB of data and more).
        assert_eq!(
            initial_memory(&component(&module(&[1, 1604]))),
            Some(105_119_744)
        );
        assert_eq!(initial_memory(b"not wasm"), None);
    }
}
