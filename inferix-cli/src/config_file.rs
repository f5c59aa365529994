//! Node settings from a TOML file (`--config FILE`).
//!
//! A file holds the same settings as the long options of its subcommand,
//! spelled with underscores (`--lease-seconds` is `lease_seconds`). It sits
//! under flags and `INFERIX_*` environment variables and above the built-in
//! defaults, so an operator keeps a deployment's settings in one file and
//! still overrides one of them for a single run.
//!
//! A key the subcommand does not know is an error naming the key and the
//! file, never silently ignored: a typo such as `lisen` would otherwise run a
//! node with the default instead of the intended setting.

use std::path::{Path, PathBuf};

use inferix_gpu::blender::SandboxPolicy;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {} is not valid TOML: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The parser's explanation, with line and column.
        message: String,
    },
    /// The file sets a key this subcommand does not have.
    #[error("unknown key `{key}` in config file {} (known keys: {known})", file.display())]
    UnknownKey {
        /// The file.
        file: PathBuf,
        /// The unknown key.
        key: String,
        /// The keys this subcommand accepts, comma-separated.
        known: String,
    },
    /// A key's value has the wrong type or is out of range.
    #[error("bad value for `{key}` in config file {}: {message}", file.display())]
    BadValue {
        /// The file.
        file: PathBuf,
        /// The key whose value is wrong.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A setting without default was given nowhere.
    #[error("{flag} is required (or the {env} environment variable, or `{key}` in --config FILE)")]
    Missing {
        /// The command-line flag.
        flag: &'static str,
        /// The environment variable.
        env: &'static str,
        /// The config file key.
        key: &'static str,
    },
    /// A secret's value or file is unusable.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
}

/// The settings of a config file for one subcommand.
pub(crate) trait ConfigFile: DeserializeOwned + Default {
    /// Every key the file may set (the struct's fields).
    const KEYS: &'static [&'static str];

    /// Range checks the types alone cannot express: the offending key and
    /// why.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
}

/// `inferix manager` settings from a file; each field is the long option of
/// the same name.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ManagerFile {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) listen: Option<String>,
    pub(crate) node_token: Option<String>,
    pub(crate) node_token_file: Option<PathBuf>,
    pub(crate) verifier_token: Option<String>,
    pub(crate) verifier_token_file: Option<PathBuf>,
    pub(crate) guest_account: Option<String>,
    pub(crate) http: Option<String>,
    pub(crate) probe_ib: Option<f64>,
    pub(crate) quorum: Option<usize>,
    pub(crate) lease_seconds: Option<u64>,
    pub(crate) store: Option<String>,
    pub(crate) store_schema: Option<String>,
    pub(crate) store_password: Option<String>,
    pub(crate) store_password_file: Option<PathBuf>,
    pub(crate) blobs: Option<String>,
    pub(crate) s3_endpoint: Option<String>,
    pub(crate) verification_seconds: Option<u64>,
    pub(crate) blob_sweep_seconds: Option<u64>,
    pub(crate) blob_retention_seconds: Option<u64>,
    pub(crate) max_tasks_per_job: Option<u64>,
    pub(crate) por_secret: Option<String>,
    pub(crate) por_secret_file: Option<PathBuf>,
    pub(crate) blender_sandbox: Option<SandboxPolicy>,
}

impl ConfigFile for ManagerFile {
    const KEYS: &'static [&'static str] = &[
        "data_dir",
        "listen",
        "node_token",
        "node_token_file",
        "verifier_token",
        "verifier_token_file",
        "guest_account",
        "http",
        "probe_ib",
        "quorum",
        "lease_seconds",
        "store",
        "store_schema",
        "store_password",
        "store_password_file",
        "blobs",
        "s3_endpoint",
        "verification_seconds",
        "blob_sweep_seconds",
        "blob_retention_seconds",
        "max_tasks_per_job",
        "por_secret",
        "por_secret_file",
        "blender_sandbox",
    ];

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.quorum == Some(0) {
            return Err(("quorum", "must be at least 1".into()));
        }
        if self.lease_seconds == Some(0) {
            return Err(("lease_seconds", "must be at least 1".into()));
        }
        if self.verification_seconds == Some(0) {
            return Err(("verification_seconds", "must be at least 1".into()));
        }
        if self.blob_sweep_seconds == Some(0) {
            return Err(("blob_sweep_seconds", "must be at least 1".into()));
        }
        if self.blob_retention_seconds == Some(0) {
            return Err(("blob_retention_seconds", "must be at least 1".into()));
        }
        if self.max_tasks_per_job == Some(0) {
            return Err(("max_tasks_per_job", "must be at least 1".into()));
        }
        if self
            .probe_ib
            .is_some_and(|ib| !(ib.is_finite() && ib > 0.0))
        {
            return Err(("probe_ib", "must be a number above 0".into()));
        }
        Ok(())
    }
}

/// `inferix worker` / `inferix verifier` settings from a file.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeFile {
    pub(crate) manager: Option<String>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) token: Option<String>,
    pub(crate) token_file: Option<PathBuf>,
    pub(crate) ib: Option<f64>,
    pub(crate) metrics: Option<String>,
    pub(crate) blender_sandbox: Option<SandboxPolicy>,
}

impl ConfigFile for NodeFile {
    const KEYS: &'static [&'static str] = &[
        "manager",
        "data_dir",
        "token",
        "token_file",
        "ib",
        "metrics",
        "blender_sandbox",
    ];

    fn validate(&self) -> Result<(), (&'static str, String)> {
        match self.ib {
            Some(ib) if !(ib.is_finite() && ib > 0.0) => {
                Err(("ib", format!("must be a positive number, not {ib}")))
            }
            _ => Ok(()),
        }
    }
}

/// Reads `file`, or the defaults when there is none.
pub(crate) fn load_optional<T: ConfigFile>(file: Option<&Path>) -> Result<T, ConfigError> {
    file.map_or_else(|| Ok(T::default()), load)
}

/// Reads and checks a config file.
pub(crate) fn load<T: ConfigFile>(file: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    parse(&text, file)
}

/// Parses config text; `file` only names the source in errors.
pub(crate) fn parse<T: ConfigFile>(text: &str, file: &Path) -> Result<T, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            file: file.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
    // Unknown keys first, by name, so the message names the key rather than
    // quoting serde's list of expected fields.
    if let Some(key) = table.keys().find(|k| !T::KEYS.contains(&k.as_str())) {
        return Err(ConfigError::UnknownKey {
            file: file.to_path_buf(),
            key: key.clone(),
            known: T::KEYS.join(", "),
        });
    }
    let bad = |key: &str, message: String| ConfigError::BadValue {
        file: file.to_path_buf(),
        key: key.to_string(),
        message,
    };
    // Every key alone, so a type error is pinned on the key that caused it
    // (all fields are optional, so one key is a complete file).
    for (key, value) in &table {
        let mut one = toml::Table::new();
        one.insert(key.clone(), value.clone());
        if let Err(e) = one.try_into::<T>() {
            return Err(bad(key, e.message().trim_end().to_string()));
        }
    }
    let settings: T = table
        .try_into()
        .map_err(|e| bad("?", e.message().trim_end().to_string()))?;
    settings.validate().map_err(|(key, m)| bad(key, m))?;
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(text: &str) -> Result<ManagerFile, ConfigError> {
        parse(text, Path::new("/etc/inferix/manager.toml"))
    }

    #[test]
    fn a_full_manager_file_sets_every_field() {
        let f = manager(
            r#"
            data_dir = "/var/lib/inferix"
            listen = "0.0.0.0:7400"
            node_token = "n"
            guest_account = "c"
            quorum = 2
            lease_seconds = 120
            "#,
        )
        .unwrap();
        assert_eq!(
            f,
            ManagerFile {
                data_dir: Some("/var/lib/inferix".into()),
                listen: Some("0.0.0.0:7400".into()),
                node_token: Some("n".into()),
                guest_account: Some("c".into()),
                quorum: Some(2),
                lease_seconds: Some(120),
                ..ManagerFile::default()
            }
        );
    }

    #[test]
    fn a_full_node_file_sets_every_field() {
        let f: NodeFile = parse(
            "manager = \"id@h:7400\"\ndata_dir = \"w\"\ntoken = \"t\"\nib = 4\nmetrics = \"127.0.0.1:9100\"\nblender_sandbox = \"required\"\n",
            Path::new("w.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            f,
            NodeFile {
                manager: Some("id@h:7400".into()),
                data_dir: Some("w".into()),
                token: Some("t".into()),
                token_file: None,
                ib: Some(4.0),
                metrics: Some("127.0.0.1:9100".into()),
                blender_sandbox: Some(SandboxPolicy::Required),
            }
        );
    }

    #[test]
    fn an_empty_file_leaves_everything_to_defaults() {
        assert_eq!(manager("").unwrap(), ManagerFile::default());
        assert_eq!(
            parse::<NodeFile>("# nothing\n", Path::new("w.toml")).unwrap(),
            NodeFile::default()
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_its_file() {
        let err = manager("listen = \"127.0.0.1:0\"\nlisen = \"x\"\n").unwrap_err();
        match &err {
            ConfigError::UnknownKey { file, key, known } => {
                assert_eq!(key, "lisen");
                assert_eq!(file, Path::new("/etc/inferix/manager.toml"));
                assert!(known.contains("listen"), "{known}");
            }
            other => panic!("expected UnknownKey, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("`lisen`") && text.contains("/etc/inferix/manager.toml"),
            "{text}"
        );
        // A worker option is unknown to the manager, and a table is too.
        assert!(matches!(
            manager("ib = 3.0"),
            Err(ConfigError::UnknownKey { key, .. }) if key == "ib"
        ));
        assert!(matches!(
            manager("[manager]\nlisten = \"x\""),
            Err(ConfigError::UnknownKey { key, .. }) if key == "manager"
        ));
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key() {
        let err = manager("listen = \"127.0.0.1:0\"\nquorum = \"three\"\n").unwrap_err();
        match &err {
            ConfigError::BadValue { key, message, .. } => {
                assert_eq!(key, "quorum");
                assert!(message.contains("three"), "{message}");
            }
            other => panic!("expected BadValue, got {other:?}"),
        }
        assert!(err.to_string().contains("`quorum`"), "{err}");
        assert!(matches!(
            manager("lease_seconds = -5"),
            Err(ConfigError::BadValue { key, .. }) if key == "lease_seconds"
        ));
        assert!(matches!(
            parse::<NodeFile>("data_dir = 7", Path::new("w.toml")),
            Err(ConfigError::BadValue { key, .. }) if key == "data_dir"
        ));
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        assert!(matches!(
            manager("quorum = 0"),
            Err(ConfigError::BadValue { key, .. }) if key == "quorum"
        ));
        assert!(matches!(
            manager("lease_seconds = 0"),
            Err(ConfigError::BadValue { key, .. }) if key == "lease_seconds"
        ));
        assert!(matches!(
            parse::<NodeFile>("ib = -1.5", Path::new("w.toml")),
            Err(ConfigError::BadValue { key, .. }) if key == "ib"
        ));
        assert!(matches!(
            parse::<NodeFile>("ib = nan", Path::new("w.toml")),
            Err(ConfigError::BadValue { key, .. }) if key == "ib"
        ));
    }

    #[test]
    fn broken_toml_and_missing_files_are_reported_with_the_file() {
        let err = manager("listen = ").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
        assert!(err.to_string().contains("manager.toml"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.toml");
        let err = load::<ManagerFile>(&missing).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("absent.toml"), "{err}");
    }

    #[test]
    fn files_on_disk_load_and_no_file_means_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("worker.toml");
        std::fs::write(&f, "manager = \"abc@h:1\"\nib = 2.5\n").unwrap();
        let w: NodeFile = load_optional(Some(&f)).unwrap();
        assert_eq!(w.manager.as_deref(), Some("abc@h:1"));
        assert_eq!(w.ib, Some(2.5));
        assert_eq!(
            load_optional::<NodeFile>(None).unwrap(),
            NodeFile::default()
        );
    }

    #[test]
    fn blob_sweep_settings_are_read_and_zero_is_refused() {
        let f = manager(
            "blob_sweep_seconds = 60\nblob_retention_seconds = 86400\nmax_tasks_per_job = 500\n",
        )
        .unwrap();
        assert_eq!(
            (
                f.blob_sweep_seconds,
                f.blob_retention_seconds,
                f.max_tasks_per_job
            ),
            (Some(60), Some(86_400), Some(500))
        );
        for key in [
            "blob_sweep_seconds",
            "blob_retention_seconds",
            "max_tasks_per_job",
        ] {
            assert!(matches!(
                manager(&format!("{key} = 0")),
                Err(ConfigError::BadValue { key: k, .. }) if k == key
            ));
        }
    }

    /// The key lists are what unknown keys are checked against: each listed
    /// key must be a field (a one-key file with a value of the wrong type
    /// fails as a bad value, not as an unknown field).
    #[test]
    fn key_lists_match_the_structs() {
        fn check<T: ConfigFile + std::fmt::Debug>() {
            for key in T::KEYS {
                let mut one = toml::Table::new();
                one.insert(key.to_string(), toml::Value::Array(Vec::new()));
                let err = one.try_into::<T>().unwrap_err().to_string();
                assert!(!err.contains("unknown field"), "{key}: {err}");
            }
            let mut unknown = toml::Table::new();
            unknown.insert("surely_not_a_key".into(), toml::Value::Boolean(true));
            let err = unknown.try_into::<T>().unwrap_err().to_string();
            assert!(err.contains("unknown field"), "{err}");
        }
        check::<ManagerFile>();
        check::<NodeFile>();
    }
}
