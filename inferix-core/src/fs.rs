//! Folders only this user may enter: node keys, task databases, scene
//! caches, lease copies and journals hold other people's scenes and the
//! network's secrets, so they are created `0700` whatever the umask allows.

use std::path::Path;

/// Creates `path` and any missing parents as folders only the current user
/// may list or enter (`0700` on Unix). Folders that already exist keep
/// their permissions: they were chosen by whoever made them.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(path)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn new_folders_and_their_new_parents_are_private() {
        let root = std::env::temp_dir().join(format!("inferix-private-{}", std::process::id()));
        let leaf = root.join("a").join("b");
        create_private_dir(&leaf).unwrap();
        for dir in [&root, &root.join("a"), &leaf] {
            let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", dir.display());
        }
        // Again: an existing folder is fine.
        create_private_dir(&leaf).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }
}
