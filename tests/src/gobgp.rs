//! GoBGP in a namespace: `gobgpd` with a private TOML config and a unix-socket API, queried and
//! driven with `gobgp --target unix://.. -j`. I/O boundary: the `gobgpd` process and `gobgp`.
//!
//! Note: GoBGP 3.10's CLI takes the socket through `--target`; `-u unix://..` times out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_lab::{ChildProcess, Netns, cmd, wait_until, wait_until_ok};
use serde_json::Value;

use crate::{Error, Result};

/// A neighbor from `gobgp -j neighbor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoBgpNeighbor {
    /// Neighbor address.
    pub address: String,
    /// Peer AS.
    pub peer_as: u64,
    /// Session state name (`Established`, `Active`, ..).
    pub state: String,
}

/// A path from `gobgp -j global rib`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoBgpPath {
    /// Best path.
    pub best: bool,
    /// Next hop (`0.0.0.0` for locally originated).
    pub next_hop: String,
    /// AS numbers of the AS_PATH, flattened.
    pub as_path: Vec<u64>,
    /// Peer it was learned from, if any.
    pub neighbor: Option<String>,
    /// Kept for a restarting peer (graceful restart helper), not yet refreshed.
    pub stale: bool,
}

/// Names of the GoBGP API `PeerState.SessionState` values.
fn session_state_name(v: &Value) -> String {
    match v.as_u64() {
        Some(1) => "Idle",
        Some(2) => "Connect",
        Some(3) => "Active",
        Some(4) => "OpenSent",
        Some(5) => "OpenConfirm",
        Some(6) => "Established",
        Some(_) => "Unknown",
        None => return v.as_str().unwrap_or("Unknown").to_owned(),
    }
    .to_owned()
}

/// A running gobgpd; stopped on drop.
#[derive(Debug)]
pub struct GoBgp {
    target: String,
    process: ChildProcess,
}

impl GoBgp {
    /// Writes `config` (gobgpd TOML) to `<dir>/gobgpd.toml` and starts gobgpd in `ns`. Set
    /// `idle-hold-time-after-reset = 1` in neighbor timers for fast reconnects.
    pub fn start(ns: &Netns, dir: &Path, config: &str) -> Result<Self> {
        let conf = dir.join("gobgpd.toml");
        std::fs::write(&conf, config).map_err(|e| Error::io(&conf, e))?;
        let sock: PathBuf = dir.join("gobgp.sock");
        let target = format!("unix://{}", sock.display());
        let conf_s = conf.to_string_lossy();
        let args = [
            "-f",
            conf_s.as_ref(),
            "-p",
            "--pprof-disable",
            "--api-hosts",
            target.as_str(),
        ];
        let mut process = ns.spawn("gobgpd", "gobgpd", &args, dir)?;
        let ready = |p: &mut ChildProcess| (sock.exists() || !p.is_running()).then_some(());
        let started = wait_until("gobgpd API socket", Duration::from_secs(10), || {
            ready(&mut process)
        });
        if started.is_err() || !process.is_running() {
            return Err(Error::Start {
                daemon: "gobgpd".to_owned(),
                detail: process.log_tail(2000),
            });
        }
        let me = Self { target, process };
        // The socket appears before the API answers; wait for a real reply.
        wait_until_ok("gobgpd API", Duration::from_secs(10), || {
            me.gobgp(&["-j", "global"])
        })?;
        Ok(me)
    }

    /// The gobgpd process.
    pub fn process(&mut self) -> &mut ChildProcess {
        &mut self.process
    }

    /// Runs `gobgp --target .. ARGS..`.
    pub fn gobgp(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["--target", self.target.as_str()];
        full.extend_from_slice(args);
        Ok(cmd::run("gobgp", &full)?)
    }

    fn json(&self, args: &[&str]) -> Result<Value> {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        let text = self.gobgp(&full)?;
        serde_json::from_str(&text)
            .map_err(|e| Error::parse(format!("gobgp {}", args.join(" ")), e.to_string()))
    }

    /// All neighbors and their session state.
    pub fn neighbors(&self) -> Result<Vec<GoBgpNeighbor>> {
        parse_neighbors(&self.json(&["neighbor"])?)
    }

    /// Waits until the neighbor `address` is Established.
    pub fn wait_established(&self, address: &str, timeout: Duration) -> Result<()> {
        wait_until_ok(
            &format!("GoBGP session with {address} Established"),
            timeout,
            || {
                let state = self.neighbors().map(|ns| {
                    ns.into_iter()
                        .find(|n| n.address == address)
                        .map(|n| n.state)
                });
                match state {
                    Ok(Some(s)) if s == "Established" => Ok(()),
                    Ok(s) => Err(format!("state {s:?}")),
                    Err(e) => Err(e.to_string()),
                }
            },
        )?;
        Ok(())
    }

    /// The global IPv4 (`-a ipv4`) or IPv6 (`-a ipv6`) RIB: prefix → paths.
    pub fn rib(&self, family: &str) -> Result<BTreeMap<String, Vec<GoBgpPath>>> {
        parse_rib(&self.json(&["global", "rib", "-a", family])?)
    }

    /// Originates `prefix` (origin IGP, so it can be ECMP with other speakers' paths).
    pub fn add_route(&self, prefix: &str) -> Result<()> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        self.gobgp(&[
            "global", "rib", "add", prefix, "origin", "igp", "-a", family,
        ])
        .map(drop)
    }

    /// Withdraws a prefix originated with [`GoBgp::add_route`].
    pub fn del_route(&self, prefix: &str) -> Result<()> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        self.gobgp(&["global", "rib", "del", prefix, "-a", family])
            .map(drop)
    }
}

/// Parses `gobgp -j neighbor`.
pub fn parse_neighbors(v: &Value) -> Result<Vec<GoBgpNeighbor>> {
    let arr = v
        .as_array()
        .ok_or_else(|| Error::parse("gobgp neighbor", "not an array"))?;
    Ok(arr
        .iter()
        .map(|n| {
            let conf = n.get("conf");
            let state = n.get("state");
            GoBgpNeighbor {
                address: conf
                    .and_then(|c| c.get("neighbor_address"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                peer_as: conf
                    .and_then(|c| c.get("peer_asn"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                state: state
                    .and_then(|s| s.get("session_state"))
                    .map(session_state_name)
                    .unwrap_or_default(),
            }
        })
        .collect())
}

/// Parses `gobgp -j global rib`.
pub fn parse_rib(v: &Value) -> Result<BTreeMap<String, Vec<GoBgpPath>>> {
    let map = v
        .as_object()
        .ok_or_else(|| Error::parse("gobgp rib", "not an object"))?;
    let mut out = BTreeMap::new();
    for (prefix, paths) in map {
        let paths = paths
            .as_array()
            .ok_or_else(|| Error::parse("gobgp rib", format!("{prefix}: not an array")))?;
        let parsed = paths
            .iter()
            .map(|p| {
                let attrs = p
                    .get("attrs")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let of_type = |t: u64| {
                    attrs
                        .iter()
                        .find(|a| a.get("type").and_then(Value::as_u64) == Some(t))
                };
                GoBgpPath {
                    best: p.get("best").and_then(Value::as_bool).unwrap_or(false),
                    next_hop: of_type(3)
                        .and_then(|a| a.get("nexthop"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    as_path: of_type(2)
                        .and_then(|a| a.get("as_paths"))
                        .and_then(Value::as_array)
                        .map(|segs| {
                            segs.iter()
                                .filter_map(|s| s.get("asns").and_then(Value::as_array))
                                .flatten()
                                .filter_map(Value::as_u64)
                                .collect()
                        })
                        .unwrap_or_default(),
                    // gobgp 3.x writes `neighbor-ip` (apiutil.Path); accept the older spelling too.
                    neighbor: p
                        .get("neighbor-ip")
                        .or_else(|| p.get("neighbor_ip"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    stale: p.get("stale").and_then(Value::as_bool).unwrap_or(false),
                }
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
    fn neighbor_states_are_named() {
        let v = serde_json::json!([{"conf": {"neighbor_address": "10.0.0.1", "peer_asn": 65001}, "state": {"session_state": 6}}]);
        let n = parse_neighbors(&v).expect("parse");
        assert_eq!(n[0].state, "Established");
        assert_eq!(n[0].peer_as, 65001);
    }

    #[test]
    fn rib_paths_carry_next_hop_and_as_path() {
        let v = serde_json::json!({"192.0.2.0/24": [{"nlri": {"prefix": "192.0.2.0/24"}, "best": true, "neighbor-ip": "10.0.0.1", "stale": true,
            "attrs": [{"type": 1, "value": 0}, {"type": 2, "as_paths": [{"segment_type": 2, "num": 1, "asns": [65001]}]},
                      {"type": 3, "nexthop": "10.0.0.1"}]}]});
        let r = parse_rib(&v).expect("parse");
        let p = &r["192.0.2.0/24"][0];
        assert_eq!(
            (p.next_hop.as_str(), p.as_path.as_slice(), p.best),
            ("10.0.0.1", &[65001u64][..], true)
        );
        assert_eq!(p.neighbor.as_deref(), Some("10.0.0.1"));
        assert!(p.stale);
    }
}
