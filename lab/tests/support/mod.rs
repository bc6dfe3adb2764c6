//! Helpers for the end-to-end tests of the shipped topologies: a private copy of a topology under a
//! unique lab name (`<topology>-<test>-<pid>`) and a private state directory, the `lab` binary run
//! against them, and `lab down` on drop so nothing outlives a failing test. Needs root.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use herald_lab::{Netns, ProcessId, wait_until};

/// A shipped topology brought up under a unique name.
pub(crate) struct ShippedLab {
    dir: tempfile::TempDir,
    /// Unique lab name.
    pub(crate) name: String,
    file: PathBuf,
}

/// `lab/containerlab`.
pub(crate) fn containerlab_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("containerlab")
}

/// The directory holding the `lab` binary under test (the cargo profile directory).
pub(crate) fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_lab"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Makes sure Herald binary `bin` of package `package` sits beside `lab` (where the runner looks),
/// building it with cargo when it is missing (`cargo test -p herald-lab` does not build other
/// packages' binaries). Returns its path.
pub(crate) fn ensure_binary(package: &str, bin: &str) -> PathBuf {
    let path = bin_dir().join(bin);
    if path.is_file() {
        return path;
    }
    let profile_dir = bin_dir();
    let target = profile_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut c = Command::new(env!("CARGO"));
    c.args(["build", "-p", package, "--bin", bin, "--target-dir"])
        .arg(&target)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        c.arg("--release");
    }
    let status = c.status().expect("run cargo build");
    assert!(
        status.success(),
        "cargo build -p {package} --bin {bin} failed"
    );
    assert!(path.is_file(), "{} missing after the build", path.display());
    path
}

impl ShippedLab {
    /// Copies `lab/containerlab/<topology>.clab.yml` and its config directory `<topology>/` into a
    /// scratch directory, renaming the lab to `<short>-<pid>` so parallel runs cannot collide.
    pub(crate) fn copy(topology: &str, short: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = containerlab_dir();
        let name = format!("{short}-{}", std::process::id());
        let text = std::fs::read_to_string(src.join(format!("{topology}.clab.yml")))
            .expect("read topology");
        let renamed: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("name:") {
                    format!("name: {name}")
                } else {
                    l.to_owned()
                }
            })
            .collect();
        let file = dir.path().join(format!("{topology}.clab.yml"));
        std::fs::write(&file, renamed.join("\n") + "\n").expect("write topology");
        let status = Command::new("cp")
            .arg("-a")
            .arg(src.join(topology))
            .arg(dir.path().join(topology))
            .status()
            .expect("cp");
        assert!(status.success(), "copying {topology}/ failed");
        Self { dir, name, file }
    }

    /// The copied topology file.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }

    /// The private state root.
    pub(crate) fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A node's run directory.
    pub(crate) fn node_dir(&self, node: &str) -> PathBuf {
        self.state_root().join(&self.name).join("nodes").join(node)
    }

    /// Namespace of `node`.
    pub(crate) fn netns(&self, node: &str) -> String {
        format!("clab-{}-{node}", self.name)
    }

    /// Runs `lab ARGS` with the private state root.
    pub(crate) fn lab(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_lab"))
            .arg("--state-dir")
            .arg(self.state_root())
            .args(args)
            .output()
            .expect("run lab")
    }

    /// Runs `lab ARGS` and asserts success; returns stdout + stderr.
    pub(crate) fn lab_ok(&self, args: &[&str]) -> String {
        let out = self.lab(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "lab {args:?} failed: {text}");
        text
    }

    /// `lab up FILE`.
    pub(crate) fn up(&self) -> String {
        let file = self.file.to_string_lossy().into_owned();
        self.lab_ok(&["up", &file])
    }

    /// Runs `argv` in `node`; (success, stdout).
    pub(crate) fn exec(&self, node: &str, argv: &[&str]) -> (bool, String) {
        let file = self.file.to_string_lossy().into_owned();
        let mut args = vec!["exec", "-t", file.as_str(), node, "--"];
        args.extend_from_slice(argv);
        let out = self.lab(&args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// `curl` from `node` to `url` with a 1 s timeout; the trimmed body on success.
    pub(crate) fn http_get(&self, node: &str, url: &str) -> Option<String> {
        match self.exec(node, &["curl", "-s", "-g", "-m", "1", url]) {
            (true, body) if !body.trim().is_empty() => Some(body.trim().to_owned()),
            _ => None,
        }
    }

    /// Waits until an HTTP GET from `node` to `url` is answered, returning the body.
    pub(crate) fn wait_http(&self, node: &str, url: &str, timeout: Duration) -> String {
        wait_until(&format!("HTTP {url} from {node}"), timeout, || {
            self.http_get(node, url)
        })
        .expect("HTTP answered")
    }

    /// Identities of every process inside the lab's namespaces.
    pub(crate) fn processes(&self, nodes: &[&str]) -> Vec<ProcessId> {
        let mut out = Vec::new();
        for n in nodes {
            let text = Command::new("ip")
                .args(["netns", "pids", &self.netns(n)])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .filter_map(|p| ProcessId::of(p).ok()),
            );
        }
        out
    }

    /// `lab down` and checks that no namespace, link or process of the lab is left.
    pub(crate) fn down_and_check(&self, nodes: &[&str], procs: &[ProcessId]) {
        let file = self.file.to_string_lossy().into_owned();
        self.lab_ok(&["down", &file]);
        for n in nodes {
            assert!(!Netns::exists(&self.netns(n)), "namespace of {n} left");
        }
        let links = Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        assert!(
            !links.contains(&format!("clab-{}-", self.name)),
            "a host link still points into the lab: {links}"
        );
        wait_until("lab processes gone", Duration::from_secs(5), || {
            procs.iter().all(|p| !p.is_alive()).then_some(())
        })
        .expect("a process outlived `lab down`");
        assert!(
            !self.state_root().join(&self.name).exists(),
            "state directory left"
        );
    }
}

impl Drop for ShippedLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep the logs of a failed test; the namespaces and processes still go.
            let keep = self.dir.path().join("state");
            let target = std::env::temp_dir().join(format!("herald-lab-failed-{}", self.name));
            let _ = Command::new("cp")
                .arg("-a")
                .arg(&keep)
                .arg(&target)
                .status();
            eprintln!("lab logs kept in {}", target.display());
        }
        let file = self.file.to_string_lossy().into_owned();
        let _ = self.lab(&["down", &file]);
    }
}

/// True when running as root (network namespaces need it).
pub(crate) fn is_root() -> bool {
    // Only root may read another user's namespace files; the `ip netns` tree is root's.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}
