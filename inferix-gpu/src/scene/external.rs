//! Files a glTF names by URI (buffers, images): data URIs are decoded, and
//! paths must stay inside the scene's own folder, so a hostile scene cannot
//! make a node read (and render, or hand on) its own files.

use std::path::{Component, Path};

use super::SceneError;

/// Reads an external file referenced by a URI, refusing paths that leave the
/// scene's directory.
pub(super) fn read_external(base: &Path, uri: &str, limit: u64) -> Result<Vec<u8>, SceneError> {
    if let Some(rest) = uri.strip_prefix("data:") {
        let Some((_, data)) = rest.split_once(";base64,") else {
            bail!("unsupported data URI");
        };
        if data.len() as u64 > limit.saturating_mul(2) {
            bail!("data URI too large");
        }
        return base64::decode(data).map_err(|e| SceneError(format!("bad base64 data URI: {e}")));
    }
    if uri.contains("://") {
        bail!("remote URI {uri:?} is not allowed");
    }
    let decoded = percent_decode(uri);
    let rel = Path::new(&decoded);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!("URI {uri:?} leaves the scene directory");
    }
    // A symlink inside the folder may still lead out of it (to a node's
    // keys or database), so the resolved file must stay under the resolved
    // folder; the file read is the resolved one, so nothing can swap it.
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let path = base
        .join(rel)
        .canonicalize()
        .map_err(|e| SceneError(format!("missing resource {uri:?}: {e}")))?;
    let folder = base
        .canonicalize()
        .map_err(|e| SceneError(format!("scene folder {}: {e}", base.display())))?;
    if !path.starts_with(&folder) {
        bail!("URI {uri:?} leaves the scene directory");
    }
    let meta = std::fs::metadata(&path)
        .map_err(|e| SceneError(format!("missing resource {uri:?}: {e}")))?;
    if meta.len() > limit {
        bail!(
            "resource {uri:?} is {} bytes, over the {limit} limit",
            meta.len()
        );
    }
    std::fs::read(&path).map_err(|e| SceneError(format!("cannot read {uri:?}: {e}")))
}

fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::read_external;

    #[test]
    fn uris_stay_inside_the_scene_folder() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("node.key");
        std::fs::write(&secret, b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("beside.bin"), b"ok").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/inner.bin"), b"in").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("link.bin")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linkdir")).unwrap();
        std::os::unix::fs::symlink("beside.bin", dir.path().join("alias.bin")).unwrap();

        let read = |uri: &str| read_external(dir.path(), uri, 1 << 20);
        assert_eq!(read("beside.bin").unwrap(), b"ok");
        assert_eq!(read("sub/inner.bin").unwrap(), b"in");
        assert_eq!(read("./sub%2Finner.bin").unwrap(), b"in");
        // A symlink that stays inside the folder is fine.
        assert_eq!(read("alias.bin").unwrap(), b"ok");
        let abs = secret.to_str().unwrap().to_string();
        // A scene named without a folder reads beside itself (tests run
        // in the package folder).
        let manifest = read_external(std::path::Path::new(""), "Cargo.toml", 1 << 20).unwrap();
        assert!(manifest.starts_with(b"[package]"));
        for uri in [
            abs.as_str(),
            "../node.key",
            "sub/../../node.key",
            "%2E%2E/node.key",
            "link.bin",
            "linkdir/node.key",
        ] {
            let e = read(uri).unwrap_err();
            assert!(e.0.contains("leaves the scene directory"), "{uri}: {e:?}");
        }
    }
}
