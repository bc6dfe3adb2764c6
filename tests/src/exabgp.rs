//! ExaBGP as a scripted peer: a per-instance env file (runs as root, no CLI pipes, no API acks),
//! an API process reading a FIFO through which tests inject `announce`/`withdraw` commands, and an
//! API process appending every received update and state change as a JSON line to a log file.
//! I/O boundary: the `exabgp` process, the FIFO and the JSON-lines log.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_lab::{ChildProcess, Netns, cmd, wait_until_ok};
use serde_json::Value;

use crate::{Error, Result};

/// One BGP neighbor of the ExaBGP instance. ExaBGP connects out unless the neighbor is
/// `passive`; passive neighbors make the instance listen on their local addresses (port 179).
#[derive(Clone, Debug, Default)]
pub struct ExaBgpNeighbor {
    /// Peer address.
    pub peer_address: String,
    /// Our address (must be configured in the namespace).
    pub local_address: String,
    /// Our AS.
    pub local_as: u32,
    /// Peer AS.
    pub peer_as: u32,
    /// Our router id.
    pub router_id: String,
    /// Families, as ExaBGP spells them (`ipv4 unicast`, `ipv6 unicast`).
    pub families: Vec<String>,
    /// Wait for the peer to connect instead of connecting out.
    pub passive: bool,
    /// TCP MD5 key (RFC 2385).
    pub md5_password: Option<String>,
    /// Hold time to propose, seconds (ExaBGP's default is 180).
    pub hold_time: Option<u16>,
    /// Advertise the graceful restart capability with this restart time, seconds.
    pub graceful_restart: Option<u16>,
}

impl ExaBgpNeighbor {
    /// The neighbor block; `index` keeps its API block names unique in the file.
    fn to_config(&self, index: usize) -> String {
        let families: String = self
            .families
            .iter()
            .map(|f| format!("        {f};\n"))
            .collect();
        let mut options = String::new();
        if self.passive {
            options.push_str("    passive;\n");
        }
        if let Some(key) = &self.md5_password {
            options.push_str(&format!("    md5-password \"{key}\";\n"));
        }
        if let Some(hold) = self.hold_time {
            options.push_str(&format!("    hold-time {hold};\n"));
        }
        if let Some(time) = self.graceful_restart {
            options.push_str(&format!(
                "    capability {{\n        graceful-restart {time};\n    }}\n"
            ));
        }
        format!(
            "neighbor {peer} {{\n    router-id {rid};\n    local-address {local};\n    local-as {las};\n    peer-as {pas};\n{options}    \
             family {{\n{families}    }}\n    \
             api inject-{index} {{ processes [ herald-inject ]; }}\n    \
             api log-{index} {{ processes [ herald-log ]; neighbor-changes; receive {{ parsed; update; open; notification; }} }}\n}}\n",
            peer = self.peer_address,
            rid = self.router_id,
            local = self.local_address,
            las = self.local_as,
            pas = self.peer_as,
        )
    }
}

/// A running ExaBGP; stopped on drop.
#[derive(Debug)]
pub struct ExaBgp {
    fifo: PathBuf,
    received: PathBuf,
    process: ChildProcess,
}

impl ExaBgp {
    /// Starts ExaBGP in `ns` with state under `dir`, peering with `neighbors`.
    pub fn start(ns: &Netns, dir: &Path, neighbors: &[ExaBgpNeighbor]) -> Result<Self> {
        let fifo = dir.join("api.fifo");
        let received = dir.join("received.jsonl");
        let write = |name: &str, text: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
            Ok(p)
        };
        cmd::run("mkfifo", &[&fifo.to_string_lossy()])?;
        write("received.jsonl", "")?;
        // `cat` ends at each writer's close; loop so the FIFO accepts any number of commands.
        let inject = write(
            "inject.sh",
            &format!("while :; do cat '{}'; done\n", fifo.display()),
        )?;
        // Not `exec cat`: ExaBGP treats a helper whose stdout closes as dead, so the shell keeps it open.
        let log = write("log.sh", &format!("cat >> '{}'\n", received.display()))?;
        // Listen only where a passive neighbor expects the peer to connect.
        let bind: Vec<&str> = neighbors
            .iter()
            .filter(|n| n.passive)
            .map(|n| n.local_address.as_str())
            .collect();
        let bind = bind.join(" ");
        let env = format!(
            "[exabgp.daemon]\nuser = 'root'\ndrop = false\ndaemonize = false\npid = ''\n\n\
             [exabgp.api]\nack = false\ncli = false\nencoder = json\n\n\
             [exabgp.log]\ndestination = 'stdout'\nlevel = INFO\n\n\
             [exabgp.tcp]\nbind = '{bind}'\nport = 179\n",
        );
        let env = write("exabgp.env", &env)?;
        let mut config = format!(
            "process herald-inject {{\n    run /bin/sh {};\n    encoder text;\n}}\n\n\
             process herald-log {{\n    run /bin/sh {};\n    encoder json;\n}}\n\n",
            inject.display(),
            log.display()
        );
        for (index, n) in neighbors.iter().enumerate() {
            config.push_str(&n.to_config(index));
        }
        let conf = write("exabgp.conf", &config)?;
        let (env_s, conf_s) = (env.to_string_lossy(), conf.to_string_lossy());
        let mut process = ns.spawn(
            "exabgp",
            "exabgp",
            &["--env", env_s.as_ref(), conf_s.as_ref()],
            dir,
        )?;
        // ExaBGP has no readiness signal of its own; a live process with the API reader started is it.
        std::thread::sleep(Duration::from_millis(300));
        if !process.is_running() {
            return Err(Error::Start {
                daemon: "exabgp".to_owned(),
                detail: process.log_tail(3000),
            });
        }
        Ok(Self {
            fifo,
            received,
            process,
        })
    }

    /// The ExaBGP process.
    pub fn process(&mut self) -> &mut ChildProcess {
        &mut self.process
    }

    /// Sends one API command line, e.g. `announce route 192.0.2.0/24 next-hop self` or
    /// `neighbor 10.0.0.1 withdraw route 192.0.2.0/24`. Waits up to 5 s for the API reader.
    pub fn api(&self, command: &str) -> Result<()> {
        // Non-blocking open fails with ENXIO until the reader has the FIFO open, instead of hanging.
        let mut f = wait_until_ok("ExaBGP API FIFO reader", Duration::from_secs(5), || {
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
                .open(&self.fifo)
        })?;
        f.write_all(format!("{}\n", command.trim_end()).as_bytes())
            .map_err(|e| Error::io(&self.fifo, e))
    }

    /// Every JSON message received so far (updates and state changes), in order.
    pub fn messages(&self) -> Result<Vec<Value>> {
        let text =
            std::fs::read_to_string(&self.received).map_err(|e| Error::io(&self.received, e))?;
        text.lines()
            .filter(|l| l.trim_start().starts_with('{'))
            .map(|l| {
                serde_json::from_str(l)
                    .map_err(|e| Error::parse("exabgp json line", format!("{e}: {l}")))
            })
            .collect()
    }

    /// The last reported state (`up`, `down`, `connected`) per peer address.
    pub fn peer_states(&self) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for m in self.messages()? {
            if m.get("type").and_then(Value::as_str) != Some("state") {
                continue;
            }
            let n = m.get("neighbor");
            let peer = n
                .and_then(|n| n.pointer("/address/peer"))
                .and_then(Value::as_str);
            let state = n.and_then(|n| n.get("state")).and_then(Value::as_str);
            if let (Some(p), Some(s)) = (peer, state) {
                out.insert(p.to_owned(), s.to_owned());
            }
        }
        Ok(out)
    }

    /// Waits until ExaBGP reports the session with `peer` up.
    pub fn wait_up(&self, peer: &str, timeout: Duration) -> Result<()> {
        wait_until_ok(
            &format!("ExaBGP session with {peer} up"),
            timeout,
            || match self.peer_states() {
                Ok(s) if s.get(peer).map(String::as_str) == Some("up") => Ok(()),
                Ok(s) => Err(format!("states {s:?}")),
                Err(e) => Err(e.to_string()),
            },
        )?;
        Ok(())
    }

    /// Prefixes currently announced to us (announces minus later withdraws), over all families.
    pub fn received_prefixes(&self) -> Result<BTreeSet<String>> {
        Ok(current_prefixes(&self.messages()?))
    }

    /// The messages received from (or state changes of) the session with `peer`, in order.
    pub fn messages_from(&self, peer: &str) -> Result<Vec<Value>> {
        Ok(self
            .messages()?
            .into_iter()
            .filter(|m| peer_of(m) == Some(peer))
            .collect())
    }

    /// Prefixes currently announced to us by `peer`.
    pub fn received_prefixes_from(&self, peer: &str) -> Result<BTreeSet<String>> {
        Ok(current_prefixes(&self.messages_from(peer)?))
    }
}

/// The peer address a JSON message is about.
fn peer_of(m: &Value) -> Option<&str> {
    m.pointer("/neighbor/address/peer").and_then(Value::as_str)
}

/// Every prefix the update messages in `messages` withdraw, in order (with repeats).
pub fn withdrawn_prefixes(messages: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for m in messages {
        if let Some(w) = m.pointer("/neighbor/message/update/withdraw") {
            nlris(w, &mut out);
        }
    }
    out
}

/// How many End-of-RIB markers the messages carry (ExaBGP reports them as `"eor"` updates).
pub fn end_of_rib_count(messages: &[Value]) -> usize {
    messages
        .iter()
        .filter(|m| {
            m.pointer("/neighbor/message/eor").is_some()
                || m.pointer("/neighbor/message/update/eor").is_some()
        })
        .count()
}

/// Collects NLRI strings from an ExaBGP 4 `announce`/`withdraw` family value, whichever shape it has
/// (`{"nexthop": [{"nlri": ..}]}` for announces, `[{"nlri": ..}]` for withdraws).
fn nlris(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => {
            for i in items {
                match i {
                    Value::Object(o) if o.contains_key("nlri") => {
                        out.extend(o.get("nlri").and_then(Value::as_str).map(str::to_owned));
                    }
                    Value::String(s) => out.push(s.clone()),
                    other => nlris(other, out),
                }
            }
        }
        Value::Object(o) => {
            for (k, inner) in o {
                // Older encoders key by prefix (`{"192.0.2.0/24": {}}`).
                if k.contains('/') && inner.as_object().is_some_and(|m| m.is_empty()) {
                    out.push(k.clone());
                } else {
                    nlris(inner, out);
                }
            }
        }
        _ => {}
    }
}

/// Replays update messages into the set of prefixes currently announced.
pub fn current_prefixes(messages: &[Value]) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for m in messages {
        let Some(update) = m.pointer("/neighbor/message/update") else {
            continue;
        };
        if let Some(w) = update.get("withdraw") {
            let mut gone = Vec::new();
            nlris(w, &mut gone);
            for p in gone {
                set.remove(&p);
            }
        }
        if let Some(a) = update.get("announce") {
            let mut new = Vec::new();
            nlris(a, &mut new);
            set.extend(new);
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withdraw_after_announce_removes_the_prefix() {
        let msgs = vec![
            serde_json::json!({"type": "update", "neighbor": {"message": {"update": {"announce": {"ipv4 unicast": {"10.0.0.1": [{"nlri": "192.0.2.0/24"}, {"nlri": "198.51.100.0/24"}]}}}}}}),
            serde_json::json!({"type": "update", "neighbor": {"message": {"update": {"withdraw": {"ipv4 unicast": [{"nlri": "192.0.2.0/24"}]}}}}}),
        ];
        let set = current_prefixes(&msgs);
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            vec!["198.51.100.0/24".to_owned()]
        );
    }
}
