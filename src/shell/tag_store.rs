//! Opening the tag store at ignition (feature `tag-store`). Every way it can fail is
//! one clear warning, and the server goes on without a store, hashing as it does
//! without one: a store is an optimisation, never a reason not to serve.

use std::path::Path;

use crate::engine::tag_store::{TagStore, TagStoreError};
use crate::engine::warn::warn;

/// Opens the store at `path` (from `tag_store` / `--tag-store`). On an error, warns
/// and answers `None`; a corrupt store that was moved aside and replaced is also
/// worth a warning, with where it went.
pub(crate) fn open_tag_store(path: &Path) -> Option<TagStore> {
    match TagStore::open(path) {
        Ok(store) => {
            if let Some(notice) = rebuilt_notice(&store) {
                warn(&notice);
            }
            Some(store)
        }
        Err(e) => {
            warn(&open_warning(&e));
            None
        }
    }
}

/// The warning for a store that could not be opened.
pub(crate) fn open_warning(e: &TagStoreError) -> String {
    let hint = match e {
        TagStoreError::Io { .. } => {
            " (check that its directory exists or can be created and is writable)"
        }
        _ => "",
    };
    format!("rocket-mmap: {e}{hint}; serving without a tag store: files are hashed as usual")
}

/// The warning for a store whose file was unreadable and was replaced by a new one.
pub(crate) fn rebuilt_notice(store: &TagStore) -> Option<String> {
    let (aside, why) = store.moved_aside()?;
    let kept = if aside.as_os_str().is_empty() {
        "it could not be moved aside and was deleted".to_owned()
    } else {
        format!("it was moved aside to {}", aside.display())
    };
    Some(format!(
        "rocket-mmap: the tag store {} was unreadable ({why}); {kept} and a new, empty store \
         was started (files are hashed once more)",
        store.path().display()
    ))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp_dir(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "rocket-mmap-shell-tagstore-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn each_failure_is_a_warning_and_no_store() {
        let dir = temp_dir("warn");
        let store_path = dir.join("tags.redb");
        let first = open_tag_store(&store_path).expect("a new store opens");
        assert!(rebuilt_notice(&first).is_none());

        // A second writer: no store, and the warning says why and what happens.
        assert!(open_tag_store(&store_path).is_none());
        let locked = TagStore::open(&store_path).unwrap_err();
        let w = open_warning(&locked);
        assert!(w.contains("open in another process"), "{w}");
        assert!(w.contains("serving without a tag store"), "{w}");
        drop(first);

        // A path through a regular file.
        let file = dir.join("plain");
        std::fs::write(&file, b"x").unwrap();
        let bad = file.join("tags.redb");
        assert!(open_tag_store(&bad).is_none());
        let w = open_warning(&TagStore::open(&bad).unwrap_err());
        assert!(
            w.contains(&*bad.to_string_lossy()) && w.contains("writable"),
            "{w}"
        );

        // Garbage: replaced, and the notice says where the old file went.
        std::fs::write(&store_path, vec![0x42; 9000]).unwrap();
        let store = open_tag_store(&store_path).expect("rebuilt");
        let notice = rebuilt_notice(&store).unwrap();
        assert!(
            notice.contains("moved aside to") && notice.contains(".corrupt-"),
            "{notice}"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
