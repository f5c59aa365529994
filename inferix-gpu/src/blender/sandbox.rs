//! Blender confined to its job folder: scenes come from strangers, and with
//! scene scripts allowed (or through a Blender bug) a scene is code. In the
//! sandbox Blender sees the system's programs and libraries read-only, its
//! own job folder, the files of the run read-only, and nothing else: not
//! the node's data folder (keys, task database, cached scenes of other
//! users), not `/home`, not `/root`, not the node's environment (tokens,
//! cloud credentials), and no network.
//!
//! The sandbox is bubblewrap (`bwrap`, Debian's `bubblewrap` package): it
//! builds the filesystem view by allowlist, so a data folder anywhere on
//! the machine stays hidden without naming it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::BlenderError;

/// Limit of the check that bubblewrap can make namespaces here.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Parts of `/etc` that Blender and its libraries read (dynamic linker,
/// fonts, GPU driver manifests, user names); the rest of `/etc`, where a
/// node's own configuration may live, stays hidden.
const ETC: [&str; 14] = [
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "fonts",
    "passwd",
    "group",
    "nsswitch.conf",
    "localtime",
    "glvnd",
    "OpenCL",
    "vulkan",
    "nvidia",
    "egl",
];

/// GPU device nodes Cycles and EEVEE open (the rest of `/dev` is a fresh,
/// minimal one: no disks).
const GPU_DEVICES: [&str; 3] = ["/dev/dri", "/dev/kfd", "/dev/nvidiactl"];

/// Environment variables passed to Blender; every other one (node tokens,
/// database passwords, cloud credentials) is dropped.
const KEPT_ENV: [&str; 14] = [
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "EGL_PLATFORM",
    "LIBGL_ALWAYS_SOFTWARE",
    "MESA_LOADER_DRIVER_OVERRIDE",
    "GALLIUM_DRIVER",
];

/// Whether Blender runs in the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SandboxPolicy {
    /// In the sandbox when bubblewrap is installed and works here;
    /// otherwise unconfined, with a warning at start.
    #[default]
    Auto,
    /// Always in the sandbox: refuse to start Blender without it
    /// ([`BlenderError::NoSandbox`]).
    Required,
    /// Never: Blender sees everything the node's user sees. Only for
    /// scenes from people who could run code on the machine anyway.
    Off,
}

impl std::str::FromStr for SandboxPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "required" => Ok(Self::Required),
            "off" => Ok(Self::Off),
            other => Err(format!(
                "unknown Blender sandbox policy {other:?} (auto, required or off)"
            )),
        }
    }
}

/// A working bubblewrap, or none (unconfined).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Sandbox {
    bwrap: Option<PathBuf>,
}

impl Sandbox {
    /// Resolves `policy` on this machine: finds `bwrap` on `PATH` and checks
    /// that it can make the namespaces it needs (containers often forbid
    /// them).
    pub(crate) async fn resolve(policy: SandboxPolicy) -> Result<Self, BlenderError> {
        if policy == SandboxPolicy::Off {
            return Ok(Self { bwrap: None });
        }
        let found = match find_bwrap() {
            Some(path) => probe(&path).await.map(|()| path),
            None => Err("bubblewrap (`bwrap`) is not installed".to_string()),
        };
        match (found, policy) {
            (Ok(path), _) => Ok(Self { bwrap: Some(path) }),
            (Err(reason), SandboxPolicy::Required) => Err(BlenderError::NoSandbox { reason }),
            (Err(reason), _) => {
                tracing::warn!(
                    %reason,
                    "Blender runs without a sandbox: a scene's code could read this node's files"
                );
                Ok(Self { bwrap: None })
            }
        }
    }

    /// Whether Blender runs confined.
    pub(crate) fn is_confined(&self) -> bool {
        self.bwrap.is_some()
    }

    /// The command that runs `exe` with `args`: confined to `dir`
    /// (read-write) and `readable` (read-only) when sandboxed. Either way
    /// the environment is reduced to [`KEPT_ENV`] and `HOME`/`TMPDIR` point
    /// into `dir`.
    pub(crate) fn command(
        &self,
        exe: &Path,
        dir: &Path,
        readable: &[PathBuf],
    ) -> tokio::process::Command {
        let tmp = dir.join("tmp");
        let mut cmd = match &self.bwrap {
            None => tokio::process::Command::new(exe),
            Some(bwrap) => {
                let mut cmd = tokio::process::Command::new(bwrap);
                cmd.args(confinement(exe, dir, readable)).arg("--").arg(exe);
                cmd
            }
        };
        cmd.env_clear();
        for key in KEPT_ENV {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.env("HOME", dir)
            .env("TMPDIR", &tmp)
            .env("TEMP", &tmp)
            .current_dir(dir);
        cmd
    }
}

/// `bwrap` on `PATH`.
fn find_bwrap() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("bwrap"))
        .find(|p| p.is_file())
}

/// Runs `true` in the sandbox's namespaces, so that a machine that forbids
/// them is found at start and not at the first render.
async fn probe(bwrap: &Path) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(bwrap);
    cmd.args(["--ro-bind", "/", "/", "--unshare-net", "--unshare-pid"])
        .args(["--die-with-parent", "--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(PROBE_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("{} did not answer within 20 s", bwrap.display()))?
        .map_err(|e| format!("cannot run {}: {e}", bwrap.display()))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{} cannot make namespaces here ({}): {}",
        bwrap.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// bubblewrap's arguments: the allowlisted view of the machine.
fn confinement(exe: &Path, dir: &Path, readable: &[PathBuf]) -> Vec<std::ffi::OsString> {
    let mut a = Args::default();
    a.flags(&[
        "--die-with-parent",
        "--new-session",
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
    ]);
    a.bind("--ro-bind", Path::new("/usr"));
    // Merged-/usr systems link /bin, /lib… into /usr; others have them as
    // folders of their own.
    for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        let p = Path::new(top);
        match std::fs::read_link(p) {
            Ok(target) => a.pair("--symlink", target.as_os_str(), p.as_os_str()),
            Err(_) if p.is_dir() => a.bind("--ro-bind", p),
            Err(_) => {}
        }
    }
    for name in ETC {
        a.bind("--ro-bind-try", &Path::new("/etc").join(name));
    }
    a.pair("--proc", "/proc".as_ref(), "".as_ref());
    a.flags(&["--dev", "/dev"]);
    for dev in GPU_DEVICES
        .iter()
        .map(PathBuf::from)
        .chain(nvidia_devices())
    {
        a.bind("--dev-bind-try", &dev);
    }
    // CPU topology and GPU enumeration; nothing of the node's own.
    a.bind("--ro-bind-try", Path::new("/sys"));
    a.flags(&["--tmpfs", "/tmp"]);
    // An executable outside /usr (an official build unpacked in /opt or a
    // home folder) brings its libraries and scripts beside it.
    if let Some(home) = exe
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|p| !p.starts_with("/usr"))
    {
        a.bind("--ro-bind", &home);
    }
    for path in readable {
        a.bind("--ro-bind", path);
    }
    a.bind("--bind", dir);
    a.out
}

/// `/dev/nvidia0`, `/dev/nvidia1`, … and `/dev/nvidia-uvm*`.
fn nvidia_devices() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/dev") else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("nvidia") && n != "nvidiactl")
        })
        .collect()
}

#[derive(Default)]
struct Args {
    out: Vec<std::ffi::OsString>,
}

impl Args {
    fn flags(&mut self, flags: &[&str]) {
        self.out.extend(flags.iter().map(Into::into));
    }
    fn pair(&mut self, flag: &str, a: &std::ffi::OsStr, b: &std::ffi::OsStr) {
        self.out.push(flag.into());
        self.out.push(a.into());
        if !b.is_empty() {
            self.out.push(b.into());
        }
    }
    /// `flag SRC SRC`: the path at the same place inside.
    fn bind(&mut self, flag: &str, path: &Path) {
        self.pair(flag, path.as_os_str(), path.as_os_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: Vec<std::ffi::OsString>) -> Vec<String> {
        v.into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_view_is_an_allowlist_with_the_job_folder_writable_last() {
        let dir = Path::new("/srv/node/data/blender/job-1");
        let scene = PathBuf::from("/srv/node/data/cache/scene.blend");
        let a = strings(confinement(
            Path::new("/usr/bin/blender"),
            dir,
            std::slice::from_ref(&scene),
        ));
        let joined = a.join(" ");
        assert!(joined.contains("--unshare-net"));
        assert!(joined.contains("--ro-bind /usr /usr"));
        assert!(joined.contains(
            "--ro-bind /srv/node/data/cache/scene.blend /srv/node/data/cache/scene.blend"
        ));
        assert!(
            joined.ends_with("--bind /srv/node/data/blender/job-1 /srv/node/data/blender/job-1")
        );
        // Nothing binds the data folder, / or /etc as a whole.
        for (i, w) in a.windows(2).enumerate() {
            if w[0].contains("bind") {
                assert_ne!(w[1], "/", "argument {i}");
                assert_ne!(w[1], "/etc", "argument {i}");
                assert_ne!(w[1], "/srv/node/data", "argument {i}");
            }
        }
    }

    #[test]
    fn policies_parse_from_their_names() {
        assert_eq!("auto".parse(), Ok(SandboxPolicy::Auto));
        assert_eq!("required".parse(), Ok(SandboxPolicy::Required));
        assert_eq!("off".parse(), Ok(SandboxPolicy::Off));
        assert!("yes".parse::<SandboxPolicy>().unwrap_err().contains("yes"));
    }
}
