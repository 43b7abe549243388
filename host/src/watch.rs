//! What the file watchers (the plugins directory, TLS certificates) count as a change.
//!
//! inotify reports opens, reads and closes too. A watcher that reloads on any event
//! triggers itself: its own read of the file is the next event, and it reloads for ever
//! (the plugins directory re-read and re-hashed every `.wasm` four times a second, a
//! rejected file was recompiled and logged each time).

use notify::event::{AccessKind, AccessMode, EventKind, MetadataKind, ModifyKind};

/// Whether an event may have changed a file's content or presence: creations, writes,
/// renames, removals, and a close after writing. Opens, reads, closes after reading and
/// access-time updates do not.
pub fn changes(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, RemoveKind, RenameMode};

    #[test]
    fn reads_and_opens_are_not_changes() {
        for quiet in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
        ] {
            assert!(!changes(&quiet), "{quiet:?}");
        }
        for change in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Remove(RemoveKind::File),
        ] {
            assert!(changes(&change), "{change:?}");
        }
    }
}
