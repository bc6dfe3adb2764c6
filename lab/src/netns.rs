//! Named network namespaces (`ip netns`), the unit of isolation for every lab node: create, run
//! commands and daemons inside, configure addresses/routes/sysctls, and delete — killing whatever
//! still runs inside first. I/O boundary: `ip`, `ip netns exec`, `/run/netns`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{ChildProcess, ProcessId, STOP_GRACE};
use crate::{Error, Result, cmd};

/// Longest namespace name we create; long enough for `<test>-<pid>-<n>`, short enough to read.
pub const MAX_NAME_LEN: usize = 64;

/// Checks that `name` is safe as a namespace (file) name.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() || name.len() > MAX_NAME_LEN {
        Some(format!("must be 1..={MAX_NAME_LEN} characters"))
    } else if name.starts_with(['.', '-']) {
        Some("must not start with '.' or '-'".to_owned())
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Some("only ASCII letters, digits, '-', '_' and '.' are allowed".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A network namespace we created; deleted (after killing every process still inside) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    keep: bool,
}

impl Netns {
    /// Creates namespace `name` (which must not exist yet) and brings its loopback up.
    pub fn create(name: &str) -> Result<Self> {
        validate_name(name)?;
        cmd::ip(&["netns", "add", name])?;
        let ns = Self {
            name: name.to_owned(),
            keep: false,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// True when a namespace called `name` exists.
    pub fn exists(name: &str) -> bool {
        Path::new("/run/netns").join(name).exists()
    }

    /// Names of all namespaces on the host.
    pub fn list() -> Result<Vec<String>> {
        let dir = Path::new("/run/netns");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(Vec::new());
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Kills every process inside namespace `name` (SIGTERM, then SIGKILL) and deletes it.
    /// A namespace that does not exist is not an error, so this is safe to repeat.
    pub fn destroy(name: &str) -> Result<()> {
        validate_name(name)?;
        if !Self::exists(name) {
            return Ok(());
        }
        for pid in pids_in(name)? {
            if let Ok(id) = ProcessId::of(pid) {
                id.terminate(STOP_GRACE)?;
            }
        }
        match cmd::ip(&["netns", "del", name]) {
            Err(e) if !cmd::is_not_found(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Disarms the guard: the namespace outlives it. Returns the name for the caller's records.
    pub fn keep(mut self) -> String {
        self.keep = true;
        std::mem::take(&mut self.name)
    }

    /// Runs `ip -n NAME args..`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        cmd::ip(&full)
    }

    /// A command that runs `program` inside the namespace (through `ip netns exec`, which execs, so
    /// the spawned PID is the program's own).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.name.as_str()]).arg(program);
        c
    }

    /// Runs `program args..` inside the namespace to completion and returns its standard output.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String> {
        cmd::output(self.command(program).args(args))
    }

    /// Runs a shell command line (`sh -c LINE`) inside the namespace.
    pub fn sh(&self, line: &str) -> Result<String> {
        self.exec("sh", &["-c", line])
    }

    /// Spawns a long-lived `program args..` inside the namespace, logs under `log_dir`.
    pub fn spawn(
        &self,
        name: &str,
        program: &str,
        args: &[&str],
        log_dir: &Path,
    ) -> Result<ChildProcess> {
        let mut c = self.command(program);
        c.args(args);
        ChildProcess::spawn(name, c, log_dir)
    }

    /// Adds an address (`10.0.0.1/30`, `fd00::1/64`) to `dev`.
    pub fn addr_add(&self, dev: &str, cidr: &str) -> Result<()> {
        let family = if cidr.contains(':') { "-6" } else { "-4" };
        // IPv6 DAD would leave the address tentative (unusable) for a second or two.
        let mut args = vec![family, "addr", "add", cidr, "dev", dev];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.ip(&args).map(drop)
    }

    /// `ip route add ARGS..` (e.g. `["default", "via", "10.0.0.1"]`).
    pub fn route_add(&self, args: &[&str]) -> Result<()> {
        let mut full = vec!["route", "add"];
        full.extend_from_slice(args);
        self.ip(&full).map(drop)
    }

    /// `ip route show ARGS..`, as text.
    pub fn routes(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["route", "show"];
        full.extend_from_slice(args);
        self.ip(&full)
    }

    /// Sets a sysctl inside the namespace (`net.ipv4.ip_forward`, `1`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec("sysctl", &["-qw", &format!("{key}={value}")])
            .map(drop)
    }

    /// Sets link `dev` administratively up.
    pub fn link_up(&self, dev: &str) -> Result<()> {
        self.ip(&["link", "set", dev, "up"]).map(drop)
    }

    /// Sets link `dev` administratively down (link-loss fault).
    pub fn link_down(&self, dev: &str) -> Result<()> {
        self.ip(&["link", "set", dev, "down"]).map(drop)
    }

    /// Sets the MTU of `dev`.
    pub fn set_mtu(&self, dev: &str, mtu: u32) -> Result<()> {
        self.ip(&["link", "set", dev, "mtu", &mtu.to_string()])
            .map(drop)
    }

    /// True when interface `dev` exists in the namespace.
    pub fn link_exists(&self, dev: &str) -> bool {
        self.ip(&["link", "show", "dev", dev]).is_ok()
    }

    /// One ICMP echo to `addr` with a 1 s timeout; true when answered.
    pub fn ping(&self, addr: &str) -> bool {
        self.exec("ping", &["-c", "1", "-W", "1", "-n", "-q", addr])
            .is_ok()
    }

    /// PIDs of all processes inside the namespace.
    pub fn pids(&self) -> Result<Vec<u32>> {
        pids_in(&self.name)
    }

    /// Path of the namespace's bind mount (for tools that take a netns path).
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Moves the calling thread into this namespace. Sockets, netlink handles and BPF links the
    /// thread makes from then on live here, and threads it spawns start here too.
    pub fn enter_current_thread(&self) -> Result<()> {
        enter_at(&self.path())
    }

    /// Runs `f` to completion on a new thread inside this namespace and returns its result (a
    /// panic in `f` is passed on to the caller).
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter_current_thread()?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// Moves the calling thread into the network namespace bound at `path` (see [`Netns::path`]);
/// for callbacks that cannot borrow the [`Netns`], such as a runtime's thread-start hook.
pub fn enter_at(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::io(path, e.into()))
}

fn pids_in(name: &str) -> Result<Vec<u32>> {
    let out = match cmd::ip(&["netns", "pids", name]) {
        Err(e) if cmd::is_not_found(&e) => return Ok(Vec::new()),
        other => other?,
    };
    out.split_whitespace()
        .map(|p| {
            p.parse().map_err(|_| Error::Parse {
                what: format!("ip netns pids {name}"),
                reason: p.to_owned(),
            })
        })
        .collect()
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Err(e) = Self::destroy(&self.name) {
            eprintln!("herald-lab: deleting netns {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_slashes_or_spaces_are_rejected() {
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("fixtures_frr-123-0").is_ok());
    }
}
