//! BIRD 2 in a namespace: `bird -f` with private config, control socket and pid file, queried with
//! `birdc -s` (BIRD 2.0 has no JSON output, so `show protocols [all]` and `show route all` text is
//! parsed here). I/O boundary: the `bird` process and `birdc`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_lab::{ChildProcess, Netns, cmd, wait_until, wait_until_ok};

use crate::{Error, Result};

/// A row of `show protocols`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdProtocol {
    /// Protocol instance name.
    pub name: String,
    /// Protocol kind (`BGP`, `Device`, `Static`, ..).
    pub proto: String,
    /// `up`, `down`, `start`, ..
    pub state: String,
    /// Free text; for BGP the session state (`Established`, `Active`, `Connect`, ..).
    pub info: String,
}

/// One route for a prefix in `show route all`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdRoute {
    /// Protocol that supplied it.
    pub protocol: String,
    /// Marked `*` (preferred).
    pub primary: bool,
    /// Next hops (`via` addresses).
    pub via: Vec<String>,
    /// `BGP.as_path` value, empty when not BGP.
    pub as_path: String,
    /// Other attributes (`BGP.origin` → `IGP`, ..).
    pub attributes: BTreeMap<String, String>,
}

/// A running BIRD; stopped on drop.
#[derive(Debug)]
pub struct Bird {
    ctl: PathBuf,
    process: ChildProcess,
}

impl Bird {
    /// Writes `config` to `<dir>/bird.conf` and starts BIRD in `ns` (as user `bird`). Remember
    /// `error wait time 1, 5` in BGP protocols, or BIRD waits a minute after a session error.
    pub fn start(ns: &Netns, dir: &Path, config: &str) -> Result<Self> {
        let conf = dir.join("bird.conf");
        std::fs::write(&conf, config).map_err(|e| Error::io(&conf, e))?;
        let ctl = dir.join("bird.ctl");
        let pid = dir.join("bird.pid");
        let dir_s = dir.to_string_lossy().into_owned();
        cmd::run("chown", &["-R", "bird:bird", &dir_s])?;
        let (conf_s, ctl_s, pid_s) = (
            conf.to_string_lossy(),
            ctl.to_string_lossy(),
            pid.to_string_lossy(),
        );
        let args = [
            "-f", "-c", &conf_s, "-s", &ctl_s, "-P", &pid_s, "-u", "bird", "-g", "bird",
        ];
        let mut process = ns.spawn("bird", "bird", &args, dir)?;
        let started = wait_until("bird control socket", Duration::from_secs(10), || {
            (ctl.exists() || !process.is_running()).then_some(())
        });
        if started.is_err() || !process.is_running() {
            return Err(Error::Start {
                daemon: "bird".to_owned(),
                detail: process.log_tail(2000),
            });
        }
        Ok(Self { ctl, process })
    }

    /// The BIRD process.
    pub fn process(&mut self) -> &mut ChildProcess {
        &mut self.process
    }

    /// Runs one `birdc` command; returns the output without the `BIRD x.y ready.` banner.
    pub fn birdc(&self, command: &str) -> Result<String> {
        let ctl = self.ctl.to_string_lossy();
        let mut args = vec!["-s", ctl.as_ref()];
        args.extend(command.split_whitespace());
        let out = cmd::run("birdc", &args)?;
        Ok(out
            .lines()
            .filter(|l| !l.starts_with("BIRD "))
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// `show protocols`.
    pub fn protocols(&self) -> Result<Vec<BirdProtocol>> {
        Ok(parse_protocols(&self.birdc("show protocols")?))
    }

    /// The BGP state line (`BGP state: Established`) of protocol `name`, from `show protocols all`.
    pub fn bgp_state(&self, name: &str) -> Result<Option<String>> {
        let text = self.birdc(&format!("show protocols all {name}"))?;
        Ok(text
            .lines()
            .find_map(|l| l.trim().strip_prefix("BGP state:"))
            .map(|s| s.trim().to_owned()))
    }

    /// Waits until BGP protocol `name` is Established.
    pub fn wait_established(&self, name: &str, timeout: Duration) -> Result<()> {
        wait_until_ok(
            &format!("BIRD protocol {name} Established"),
            timeout,
            || match self.bgp_state(name) {
                Ok(Some(s)) if s == "Established" => Ok(()),
                Ok(s) => Err(format!("state {s:?}")),
                Err(e) => Err(e.to_string()),
            },
        )?;
        Ok(())
    }

    /// `show route all`: prefix → routes (all tables).
    pub fn routes(&self) -> Result<BTreeMap<String, Vec<BirdRoute>>> {
        parse_routes(&self.birdc("show route all")?)
    }
}

/// Parses `show protocols` rows (header line skipped).
pub fn parse_protocols(text: &str) -> Vec<BirdProtocol> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Name "))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            // Name Proto Table State Since [Info...]; Since may be `2024-01-01 10:00:00` (two words).
            if cols.len() < 5 {
                return None;
            }
            let info_start = if cols
                .get(5)
                .is_some_and(|c| c.contains(':') && cols[4].contains('-'))
            {
                6
            } else {
                5
            };
            Some(BirdProtocol {
                name: cols[0].to_owned(),
                proto: cols[1].to_owned(),
                state: cols[3].to_owned(),
                info: cols
                    .get(info_start..)
                    .map(|c| c.join(" "))
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Parses `show route all` output.
pub fn parse_routes(text: &str) -> Result<BTreeMap<String, Vec<BirdRoute>>> {
    let mut out: BTreeMap<String, Vec<BirdRoute>> = BTreeMap::new();
    let mut prefix: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with("Table ") {
            continue;
        }
        if line.starts_with('\t') {
            // Attribute lines of the current route: `\tvia 10.0.0.1 on eth1`, `\tBGP.as_path: 65001`.
            let attr = line.trim();
            let Some(route) = prefix
                .as_ref()
                .and_then(|p| out.get_mut(p))
                .and_then(|v| v.last_mut())
            else {
                return Err(Error::parse(
                    "bird routes",
                    format!("attribute before any route: {attr}"),
                ));
            };
            if let Some(rest) = attr.strip_prefix("via ") {
                route.via.push(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            } else if let Some((k, v)) = attr.split_once(": ") {
                if k == "BGP.as_path" {
                    route.as_path = v.trim().to_owned();
                }
                route
                    .attributes
                    .insert(k.trim().to_owned(), v.trim().to_owned());
            }
            continue;
        }
        // A route line: `PREFIX  unicast [proto time] * (pref) ...`, or the same with the prefix
        // column blank for a further route to the previous prefix.
        if !line.starts_with(' ') {
            prefix = line.split_whitespace().next().map(str::to_owned);
        }
        let protocol = line
            .split_once('[')
            .and_then(|(_, r)| r.split_whitespace().next())
            .map(|p| p.trim_end_matches(']').to_owned())
            .ok_or_else(|| Error::parse("bird routes", format!("no protocol in: {line}")))?;
        let primary = line
            .split_once(']')
            .is_some_and(|(_, r)| r.trim_start().starts_with('*'));
        let Some(p) = prefix.clone() else {
            return Err(Error::parse(
                "bird routes",
                format!("route without prefix: {line}"),
            ));
        };
        // `via` may also be on the route line itself (`192.0.2.0/24 via 10.0.0.1 on eth1 [..]`).
        let mut via = Vec::new();
        if let Some((_, r)) = line.split_once(" via ") {
            via.extend(r.split_whitespace().next().map(str::to_owned));
        }
        out.entry(p).or_default().push(BirdRoute {
            protocol,
            primary,
            via,
            as_path: String::new(),
            attributes: BTreeMap::new(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_table_parses_bgp_info() {
        let text = "Name       Proto      Table      State  Since         Info\n\
                    device1    Device     ---        up     00:10:24.123  \n\
                    frr        BGP        ---        up     00:10:25.456  Established   \n\
                    gobgp      BGP        ---        start  2024-05-01 00:10:25  Active        Socket: Connection refused\n";
        let p = parse_protocols(text);
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[1].name.as_str(), p[1].info.as_str()),
            ("frr", "Established")
        );
        assert!(p[2].info.starts_with("Active"), "{:?}", p[2]);
    }

    #[test]
    fn route_all_parses_multiple_paths_and_attributes() {
        let text = [
            "Table master4:",
            "192.0.2.0/24         unicast [frr 00:10:26.000] * (100) [AS65000i]",
            "\tvia 10.0.0.1 on eth1",
            "\tType: BGP univ",
            "\tBGP.origin: IGP",
            "\tBGP.as_path: 65000",
            "                     unicast [gob 00:10:27.000] (100) [AS65002i]",
            "\tvia 10.0.1.1 on eth2",
            "\tBGP.as_path: 65002",
        ]
        .join("\n");
        let r = parse_routes(&text).expect("parse");
        let paths = &r["192.0.2.0/24"];
        assert_eq!(paths.len(), 2);
        assert!(paths[0].primary && !paths[1].primary);
        assert_eq!(paths[0].via, vec!["10.0.0.1".to_owned()]);
        assert_eq!(paths[1].as_path, "65002");
        assert_eq!(
            paths[0].attributes.get("BGP.origin").map(String::as_str),
            Some("IGP")
        );
    }
}
