//! Secrets (tokens, the Proof-of-Render secret, the database password)
//! given as a value or as a file holding it. A file keeps the secret out
//! of the process list and the shell history, where a flag's value shows
//! (`ps`, `/proc/<pid>/cmdline`); container secrets arrive as files.

use std::path::{Path, PathBuf};

/// Why a secret could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    /// The value and a file holding it were both given.
    #[error("give {flag} or {flag}-file, not both")]
    Both {
        /// The value's flag.
        flag: &'static str,
    },
    /// The file could not be read.
    #[error("cannot read {flag}-file {}: {source}", path.display())]
    Read {
        /// The value's flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file holds nothing but a line end.
    #[error("{flag}-file {} is empty", path.display())]
    Empty {
        /// The value's flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
    },
}

/// The secret `flag` names: its `value`, or the contents of `file` with
/// one trailing line end removed (editors add one). Files that others may
/// read are used, with a warning.
pub(crate) fn secret(
    flag: &'static str,
    value: Option<String>,
    file: Option<&Path>,
) -> Result<Option<String>, SecretError> {
    let Some(path) = file else {
        return Ok(value);
    };
    if value.is_some() {
        return Err(SecretError::Both { flag });
    }
    let read = |source| SecretError::Read {
        flag,
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(read)?;
    warn_if_shared(flag, path);
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if text.is_empty() {
        return Err(SecretError::Empty {
            flag,
            path: path.to_path_buf(),
        });
    }
    Ok(Some(text.to_string()))
}

#[cfg(unix)]
fn warn_if_shared(flag: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "{flag}-file may be read by other users (chmod 600 it)"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_flag: &str, _path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_gives_its_first_line_without_its_line_end() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        for (written, read) in [
            ("s3cret\n", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            ("s3cret", "s3cret"),
            (" spaced \n\n", " spaced \n"),
        ] {
            std::fs::write(&f, written).unwrap();
            assert_eq!(
                secret("--token", None, Some(&f)).unwrap().as_deref(),
                Some(read)
            );
        }
        assert_eq!(
            secret("--token", Some("v".into()), None)
                .unwrap()
                .as_deref(),
            Some("v")
        );
        assert_eq!(secret("--token", None, None).unwrap(), None);
    }

    #[test]
    fn both_forms_an_empty_file_and_a_missing_one_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "x\n").unwrap();
        let both = secret("--token", Some("y".into()), Some(&f)).unwrap_err();
        assert_eq!(both.to_string(), "give --token or --token-file, not both");
        std::fs::write(&f, "\n").unwrap();
        assert!(matches!(
            secret("--token", None, Some(&f)),
            Err(SecretError::Empty { .. })
        ));
        let missing = secret("--token", None, Some(&dir.path().join("none"))).unwrap_err();
        assert!(matches!(missing, SecretError::Read { .. }), "{missing}");
        assert!(missing.to_string().contains("--token-file"), "{missing}");
    }
}
