//! What the file watchers (the plugins directory, the configuration file, TLS
//! certificates) count as a change, and a directory watch that reports them.
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

/// Watches `dir` (not its subdirectories): the receiver gets a `()` for each batch of
/// [`changes`] (a full channel drops the rest; one wake-up is enough for a rescan). Keep
/// the watcher alive as long as the receiver is used.
pub fn watch_dir(
    dir: &std::path::Path,
) -> Result<(notify::RecommendedWatcher, tokio::sync::mpsc::Receiver<()>), String> {
    use notify::Watcher as _;
    let (tx, rx) = tokio::sync::mpsc::channel::<()>(64);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| changes(&e.kind)) {
            let _ = tx.try_send(());
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    watcher
        .watch(dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    Ok((watcher, rx))
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
