//! FRR instances (zebra + bgpd, optionally bfdd/staticd) running inside a namespace with private
//! config, vty socket and pid paths (no systemd, no `/etc/frr`), plus typed queries through
//! `vtysh --vty_socket .. -c '... json'`. I/O boundary: the FRR daemons and `vtysh`.
//!
//! Daemons run in the foreground (no `-d`) so the PID we spawn is the daemon's own and its output
//! lands in our log files. They start with an empty config; the integrated `frr.conf` is then applied
//! with `vtysh -f`, which routes each command to the daemon that owns it — so the same `frr.conf` a
//! containerlab FRR node binds works unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::netns::Netns;
use crate::process::{ChildProcess, ProcessId};
use crate::{Error, Result, cmd, wait_until};

/// Where Debian installs the FRR daemons.
pub const FRR_BIN_DIR: &str = "/usr/lib/frr";

/// How long a daemon may take to open its vty socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The FRR daemons the lab knows how to run (zebra always runs, first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FrrDaemon {
    /// RIB manager and kernel FIB interface.
    Zebra,
    /// BGP.
    Bgpd,
    /// BFD.
    Bfdd,
    /// Static routes.
    Staticd,
}

impl FrrDaemon {
    /// Every supported daemon, in start order.
    pub const ALL: [FrrDaemon; 4] = [Self::Zebra, Self::Bgpd, Self::Bfdd, Self::Staticd];

    /// The daemon's program name (also its name in FRR's `daemons` file).
    pub fn name(self) -> &'static str {
        match self {
            Self::Zebra => "zebra",
            Self::Bgpd => "bgpd",
            Self::Bfdd => "bfdd",
            Self::Staticd => "staticd",
        }
    }

    /// Looks a daemon up by its program name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// What to run: the integrated `frr.conf` text and the daemons besides zebra.
#[derive(Clone, Debug)]
pub struct FrrConfig {
    /// Integrated configuration, as in `/etc/frr/frr.conf`.
    pub config: String,
    /// Daemons to run; zebra is added if missing. Defaults to bgpd only.
    pub daemons: Vec<FrrDaemon>,
}

impl FrrConfig {
    /// zebra + bgpd with `config`.
    pub fn bgp(config: impl Into<String>) -> Self {
        Self {
            config: config.into(),
            daemons: vec![FrrDaemon::Bgpd],
        }
    }

    /// Adds bfdd.
    pub fn with_bfd(mut self) -> Self {
        self.daemons.push(FrrDaemon::Bfdd);
        self
    }

    /// Parses an FRR `daemons` file (`bgpd=yes` lines) into the daemons to run. Daemons FRR has but
    /// the lab does not run are reported by name.
    pub fn daemons_from_file(text: &str) -> Result<Vec<FrrDaemon>> {
        let mut daemons = Vec::new();
        let mut unsupported = Vec::new();
        for line in text.lines().map(str::trim) {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim().trim_matches('"'));
            // Option lines such as `bgpd_options=` or `vtysh_enable=` are not daemon switches.
            if key.contains('_') || value != "yes" {
                continue;
            }
            match FrrDaemon::from_name(key) {
                Some(d) => daemons.push(d),
                None => unsupported.push(format!("FRR daemon `{key}`")),
            }
        }
        if !unsupported.is_empty() {
            return Err(Error::Unsupported {
                file: "daemons".to_owned(),
                features: unsupported,
            });
        }
        Ok(daemons)
    }

    fn ordered_daemons(&self) -> Vec<FrrDaemon> {
        let mut ds = self.daemons.clone();
        ds.push(FrrDaemon::Zebra);
        ds.sort();
        ds.dedup();
        ds
    }
}

/// One BGP neighbor as seen in `show bgp summary json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrrPeer {
    /// Neighbor address (or interface name for unnumbered peers).
    pub address: String,
    /// Address family key from FRR (`ipv4Unicast`, `ipv6Unicast`, ..).
    pub family: String,
    /// Remote AS.
    pub remote_as: u64,
    /// FSM state (`Established`, `Active`, `Idle`, ..).
    pub state: String,
    /// Prefixes received (accepted) in this family.
    pub prefixes_received: u64,
    /// Prefixes sent in this family.
    pub prefixes_sent: u64,
}

/// One path for a prefix in `show bgp <afi> unicast json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrrPath {
    /// Chosen as best path.
    pub best: bool,
    /// Part of the multipath (ECMP) set.
    pub multipath: bool,
    /// AS path as FRR prints it (`"65001"`, `""` for local).
    pub as_path: String,
    /// Next-hop addresses.
    pub next_hops: Vec<String>,
    /// Peer the path came from, when learned.
    pub peer: Option<String>,
}

/// A running FRR instance. Stops its daemons on drop (the directory belongs to the caller).
#[derive(Debug)]
pub struct Frr {
    dir: PathBuf,
    daemons: Vec<ChildProcess>,
}

impl Frr {
    /// Starts zebra and the configured daemons in `ns`, all state under `dir` (created; it and its
    /// ancestors must be traversable by the `frr` user), then applies `config.config`.
    pub fn start(ns: &Netns, dir: &Path, config: &FrrConfig) -> Result<Self> {
        let run = dir.join("run");
        std::fs::create_dir_all(&run).map_err(|e| Error::io(&run, e))?;
        let conf = dir.join("frr.conf");
        std::fs::write(&conf, &config.config).map_err(|e| Error::io(&conf, e))?;
        let empty = dir.join("empty.conf");
        std::fs::write(&empty, "").map_err(|e| Error::io(&empty, e))?;
        let dir_str = path_str(dir)?;
        cmd::run("chmod", &["0755", dir_str])?;
        cmd::run("chown", &["-R", "frr:frr", dir_str])?;

        let mut frr = Self {
            dir: dir.to_owned(),
            daemons: Vec::new(),
        };
        let run_s = path_str(&run)?.to_owned();
        let zserv = format!("{run_s}/zserv.api");
        let empty_s = path_str(&empty)?.to_owned();
        for daemon in config.ordered_daemons() {
            let name = daemon.name();
            let pid_file = format!("{run_s}/{name}.pid");
            let log = format!("file:{run_s}/{name}.log");
            let args = [
                "-f",
                &empty_s,
                "--vty_socket",
                &run_s,
                "-i",
                &pid_file,
                "-z",
                &zserv,
                "-u",
                "frr",
                "-g",
                "frr",
                "--log",
                &log,
            ];
            let program = format!("{FRR_BIN_DIR}/{name}");
            let mut child = ns.spawn(name, &program, &args, dir)?;
            let vty = run.join(format!("{name}.vty"));
            let ready = wait_until(&format!("{name} vty socket"), START_TIMEOUT, || {
                (vty.exists() || !child.is_running()).then_some(())
            });
            if ready.is_err() || !child.is_running() {
                let tail = child.log_tail(2000);
                return Err(Error::NotAvailable {
                    what: format!("FRR {name}"),
                    reason: format!("did not start\n{tail}"),
                });
            }
            frr.daemons.push(child);
        }
        frr.apply_config()?;
        Ok(frr)
    }

    /// Applies the instance's `frr.conf` (again) through `vtysh -f`.
    pub fn apply_config(&self) -> Result<()> {
        let conf = self.dir.join("frr.conf");
        cmd::output(self.vtysh_command().arg("-f").arg(&conf)).map(drop)
    }

    fn vtysh_command(&self) -> Command {
        let mut c = Command::new("vtysh");
        c.arg("--vty_socket").arg(self.dir.join("run"));
        c
    }

    /// The instance directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The running daemons (name, identity).
    pub fn processes(&self) -> Vec<(String, ProcessId)> {
        self.daemons
            .iter()
            .map(|d| (d.name().to_owned(), d.id()))
            .collect()
    }

    /// Runs one vtysh command and returns its text output.
    pub fn vtysh(&self, command: &str) -> Result<String> {
        cmd::output(self.vtysh_command().args(["-c", command]))
    }

    /// Runs one vtysh command ending in `json` and parses the output.
    pub fn vtysh_json(&self, command: &str) -> Result<Value> {
        let text = self.vtysh(command)?;
        serde_json::from_str(&text).map_err(|e| Error::Parse {
            what: format!("vtysh `{command}`"),
            reason: e.to_string(),
        })
    }

    /// All neighbors from `show bgp summary json`, over every address family.
    pub fn bgp_summary(&self) -> Result<Vec<FrrPeer>> {
        parse_summary(&self.vtysh_json("show bgp summary json")?)
    }

    /// FSM state of neighbor `address` in any family, if configured.
    pub fn peer_state(&self, address: &str) -> Result<Option<String>> {
        Ok(self
            .bgp_summary()?
            .into_iter()
            .find(|p| p.address == address)
            .map(|p| p.state))
    }

    /// Waits until neighbor `address` is Established.
    pub fn wait_established(&self, address: &str, timeout: Duration) -> Result<()> {
        crate::wait_until_ok(
            &format!("FRR session with {address} Established"),
            timeout,
            || match self.peer_state(address) {
                Ok(Some(s)) if s == "Established" => Ok(()),
                Ok(s) => Err(format!("state {s:?}")),
                Err(e) => Err(e.to_string()),
            },
        )
    }

    /// The BGP RIB for `afi` (`ipv4` or `ipv6`) unicast: prefix → paths.
    pub fn bgp_routes(&self, afi: &str) -> Result<BTreeMap<String, Vec<FrrPath>>> {
        parse_routes(&self.vtysh_json(&format!("show bgp {afi} unicast json"))?)
    }

    /// `show bgp neighbors json`, raw.
    pub fn neighbors_json(&self) -> Result<Value> {
        self.vtysh_json("show bgp neighbors json")
    }

    /// Stops the daemons (also done on drop).
    pub fn stop(&mut self) -> Result<()> {
        // Reverse order: clients of zebra first.
        while let Some(mut d) = self.daemons.pop() {
            d.stop()?;
        }
        Ok(())
    }

    /// Leaves the daemons running after the guard is gone; returns their identities.
    pub fn detach(mut self) -> Vec<(String, ProcessId)> {
        std::mem::take(&mut self.daemons)
            .into_iter()
            .map(|d| (d.name().to_owned(), d.detach()))
            .collect()
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("herald-lab: stopping FRR in {}: {e}", self.dir.display());
        }
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().ok_or_else(|| Error::InvalidName {
        name: p.display().to_string(),
        reason: "path is not UTF-8".to_owned(),
    })
}

fn parse_error(what: &str, reason: impl Into<String>) -> Error {
    Error::Parse {
        what: what.to_owned(),
        reason: reason.into(),
    }
}

/// `show bgp summary json` of the FRR instance whose vty sockets are in `run_dir` (for tools that
/// did not start it, such as `lab status`).
pub fn summary_at(run_dir: &Path) -> Result<Vec<FrrPeer>> {
    let text = cmd::output(
        Command::new("vtysh")
            .arg("--vty_socket")
            .arg(run_dir)
            .args(["-c", "show bgp summary json"]),
    )?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| parse_error("bgp summary", e.to_string()))?;
    parse_summary(&v)
}

/// `show bgp <afi> unicast json` of the FRR instance whose vty sockets are in `run_dir`.
pub fn routes_at(run_dir: &Path, afi: &str) -> Result<BTreeMap<String, Vec<FrrPath>>> {
    let command = format!("show bgp {afi} unicast json");
    let text = cmd::output(
        Command::new("vtysh")
            .arg("--vty_socket")
            .arg(run_dir)
            .args(["-c", &command]),
    )?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| parse_error("bgp routes", e.to_string()))?;
    parse_routes(&v)
}

/// Parses `show bgp summary json` (one object per address family, each with `peers`).
pub fn parse_summary(v: &Value) -> Result<Vec<FrrPeer>> {
    let families = v
        .as_object()
        .ok_or_else(|| parse_error("bgp summary", "not an object"))?;
    let mut peers = Vec::new();
    for (family, body) in families {
        let Some(map) = body.get("peers").and_then(Value::as_object) else {
            continue;
        };
        for (address, p) in map {
            let num = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
            peers.push(FrrPeer {
                address: address.clone(),
                family: family.clone(),
                remote_as: num("remoteAs"),
                state: p
                    .get("state")
                    .and_then(Value::as_str)
                    .unwrap_or("Unknown")
                    .to_owned(),
                prefixes_received: num("pfxRcd"),
                prefixes_sent: num("pfxSnt"),
            });
        }
    }
    Ok(peers)
}

/// Parses `show bgp <afi> unicast json` (`routes`: prefix → array of paths).
pub fn parse_routes(v: &Value) -> Result<BTreeMap<String, Vec<FrrPath>>> {
    let Some(routes) = v.get("routes") else {
        // FRR prints `{}` for an empty or unconfigured table.
        return Ok(BTreeMap::new());
    };
    let routes = routes
        .as_object()
        .ok_or_else(|| parse_error("bgp routes", "`routes` is not an object"))?;
    let mut out = BTreeMap::new();
    for (prefix, paths) in routes {
        let paths = paths
            .as_array()
            .ok_or_else(|| parse_error("bgp routes", format!("{prefix}: not an array")))?;
        let parsed = paths
            .iter()
            .map(|p| FrrPath {
                best: p.get("bestpath").and_then(Value::as_bool).unwrap_or(false),
                multipath: p.get("multipath").and_then(Value::as_bool).unwrap_or(false),
                as_path: p
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                next_hops: p
                    .get("nexthops")
                    .and_then(Value::as_array)
                    .map(|nhs| {
                        nhs.iter()
                            .filter_map(|n| n.get("ip").and_then(Value::as_str))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                peer: p.get("peerId").and_then(Value::as_str).map(str::to_owned),
            })
            .collect();
        out.insert(prefix.clone(), parsed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemons_file_selects_supported_daemons_and_names_the_rest() {
        let ok = FrrConfig::daemons_from_file(
            "bgpd=yes\nbfdd=yes\nospfd=no\nbgpd_options=\"-A 127.0.0.1\"\n",
        );
        assert_eq!(ok.ok(), Some(vec![FrrDaemon::Bgpd, FrrDaemon::Bfdd]));
        let err = FrrConfig::daemons_from_file("bgpd=yes\nisisd=yes\n")
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref().unwrap_or_default().contains("isisd"),
            "{err:?}"
        );
    }

    #[test]
    fn summary_and_routes_parse_frr_8_shapes() {
        let summary: Value = serde_json::json!({
            "ipv4Unicast": {"as": 65000, "peers": {"10.0.0.2": {"remoteAs": 65001, "state": "Established", "pfxRcd": 2, "pfxSnt": 1}}},
            "ipv6Unicast": {}
        });
        let peers = parse_summary(&summary).expect("summary");
        assert_eq!(peers.len(), 1);
        assert_eq!(
            (peers[0].state.as_str(), peers[0].prefixes_received),
            ("Established", 2)
        );
        let routes: Value = serde_json::json!({"routes": {"192.0.2.0/24": [
            {"valid": true, "bestpath": true, "multipath": true, "path": "65001", "peerId": "10.0.0.2",
             "nexthops": [{"ip": "10.0.0.2", "afi": "ipv4", "used": true}]}
        ]}});
        let r = parse_routes(&routes).expect("routes");
        let p = &r["192.0.2.0/24"][0];
        assert!(p.best && p.multipath);
        assert_eq!(p.next_hops, vec!["10.0.0.2".to_owned()]);
        assert!(
            parse_routes(&serde_json::json!({}))
                .expect("empty")
                .is_empty()
        );
    }
}
