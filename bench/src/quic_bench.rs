//! QUIC blob streaming next to plain TCP: runs the transport crate's
//! `quic_bench` example (which measures both in one run) and takes its
//! figures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::report::{Row, Target};
use crate::{Options, Report};

/// Figures parsed from the example's output.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamFigures {
    /// QUIC MB/s on a warmed connection.
    pub quic_warm: f64,
    /// QUIC MB/s on a fresh connection.
    pub quic_fresh: f64,
    /// Plain TCP MB/s.
    pub tcp: f64,
    /// TCP + TLS 1.3 MB/s.
    pub tls: f64,
}

/// Reads the MB/s figures out of the example's printed lines.
pub fn parse(output: &str) -> Option<StreamFigures> {
    let mbs = |label: &str| -> Option<f64> {
        let line = output.lines().find(|l| l.trim_start().starts_with(label))?;
        let rest = &line[line.find(':')? + 1..];
        rest.split_whitespace().next()?.parse().ok()
    };
    Some(StreamFigures {
        quic_fresh: mbs("QUIC, fresh connection")?,
        quic_warm: mbs("QUIC, warmed connection")?,
        tcp: mbs("plain TCP")?,
        tls: mbs("TCP + TLS 1.3")?,
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The example binary built with this program's profile, if present:
/// `<target>/<profile>/examples/quic_bench`, found from this executable's
/// own place in the target folder.
fn example_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join("examples").join("quic_bench"))
        .find(|p| p.is_file())
}

/// Builds the example with cargo (same profile as this program).
fn build_example(limit: Duration) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).args([
        "build",
        "-q",
        "-p",
        "inferix-transport",
        "--example",
        "quic_bench",
    ]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    run_with_limit(cmd, limit).map(|_| ())
}

fn run_with_limit(mut cmd: Command, limit: Duration) -> Result<String, String> {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    // The output is read to the end on a thread (a full pipe would stall
    // the child), and the wait for it is bounded.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(out) => out.map_err(|e| e.to_string())?,
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            return Err(format!("{cmd:?} ran past {limit:?}"));
        }
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs the example (building it first in a full run; a quick run uses the
/// binary `cargo test` already built) and adds its figures to `report`.
pub async fn run(opts: &Options, report: &mut Report) {
    let quick = opts.quick;
    let outcome = tokio::task::spawn_blocking(move || -> Result<String, String> {
        if !quick || example_binary().is_none() {
            build_example(Duration::from_secs(if quick { 120 } else { 900 }))?;
        }
        let bin = example_binary().ok_or("quic_bench example binary not found after build")?;
        let mut cmd = Command::new(bin);
        cmd.args(["--mib", if quick { "16" } else { "256" }]);
        run_with_limit(cmd, Duration::from_secs(300))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let text = match outcome {
        Ok(t) => t,
        Err(e) => {
            report.note(format!("QUIC vs TCP streaming not measured: {e}"));
            return;
        }
    };
    match parse(&text) {
        Some(f) => {
            let note = "inferix-transport example quic_bench, 1 MiB BlobChunk messages on loopback";
            report.push(
                Row::new(
                    "streaming",
                    "QUIC blob stream (warmed)",
                    f.quic_warm,
                    "MB/s",
                )
                .baseline(f.tcp, "plain TCP MB/s")
                .note(note),
            );
            report.push(
                Row::new("streaming", "QUIC ÷ TCP (warmed)", f.quic_warm / f.tcp, "×")
                    .target(Target::AtLeast(0.7))
                    .note(format!(
                        "fresh connection {:.0} MB/s ({:.2}× TCP); TCP+TLS 1.3 {:.0} MB/s",
                        f.quic_fresh,
                        f.quic_fresh / f.tcp,
                        f.tls
                    )),
            );
        }
        None => report.note("QUIC vs TCP: could not read the example's figures"),
    }
    report.note(format!("quic_bench output:\n{}", text.trim_end()));
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_example_output() {
        let out = "QUIC request/response: 1000 round trips/s\n\
                   streaming 16 MiB as 1 MiB messages, sender and receiver on their own threads:\n  \
                   QUIC, fresh connection:     120 MB/s  0.9 s CPU/GiB\n  \
                   QUIC, warmed connection:    300 MB/s  0.5 s CPU/GiB\n  \
                   plain TCP:                 1000 MB/s  0.1 s CPU/GiB\n  \
                   TCP + TLS 1.3 (rustls):     800 MB/s  0.2 s CPU/GiB\n";
        let f = super::parse(out).unwrap();
        assert_eq!(f.quic_warm, 300.0);
        assert_eq!(f.quic_fresh, 120.0);
        assert_eq!(f.tcp, 1000.0);
        assert_eq!(f.tls, 800.0);
        assert!(super::parse("nothing").is_none());
    }
}
