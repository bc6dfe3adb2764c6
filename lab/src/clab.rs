//! containerlab topology files: the YAML model (serde-saphyr, which reports line and column), and
//! validation into a resolved [`Topology`] that the runner can build. Everything this runner does
//! not implement is collected and reported by name in one [`Error::Unsupported`], never ignored.
//! I/O boundary: reading the topology file and checking that bound host files exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::link::validate_ifname;
use crate::netns::{MAX_NAME_LEN, validate_name};
use crate::runner::images::{self, Program};
use crate::{Error, Result};

#[derive(Debug, Deserialize)]
struct RawFile {
    name: Option<String>,
    topology: Option<RawTopology>,
    #[serde(flatten)]
    extra: BTreeMap<String, IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct RawTopology {
    #[serde(default)]
    nodes: BTreeMap<String, RawNode>,
    #[serde(default)]
    links: Vec<RawLink>,
    #[serde(flatten)]
    extra: BTreeMap<String, IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct RawNode {
    kind: Option<String>,
    image: Option<String>,
    #[serde(default)]
    binds: Vec<String>,
    #[serde(default)]
    exec: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cmd: Option<String>,
    /// Metadata only (graph tools read it); it changes nothing at run time, so it is accepted.
    #[serde(default, rename = "labels")]
    _labels: BTreeMap<String, String>,
    #[serde(flatten)]
    extra: BTreeMap<String, IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct RawLink {
    endpoints: Option<Vec<String>>,
    #[serde(flatten)]
    extra: BTreeMap<String, IgnoredAny>,
}

/// Node kinds the runner builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A container: here, a network namespace running the program its image stands for.
    Linux,
    /// A Linux bridge: here, a namespace holding a bridge named after the node.
    Bridge,
}

/// A file bound into a node (`host:container[:ro|rw]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    /// Absolute host path (relative paths are resolved against the topology file's directory).
    pub host: PathBuf,
    /// Path inside the container.
    pub container: String,
}

/// A validated node.
#[derive(Clone, Debug)]
pub struct Node {
    /// Node name (unique in the topology).
    pub name: String,
    /// Kind.
    pub kind: NodeKind,
    /// Image, for linux nodes.
    pub image: Option<String>,
    /// The local program that stands for the image.
    pub program: Program,
    /// Bound files.
    pub binds: Vec<Bind>,
    /// Commands run in the node after it starts, in order.
    pub exec: Vec<String>,
    /// Environment for the node's program, `cmd` and `exec` lines.
    pub env: BTreeMap<String, String>,
    /// Long-running command of a plain linux node.
    pub cmd: Option<String>,
}

impl Node {
    /// The host path bound to `container`, if any.
    pub fn bind_for(&self, container: &str) -> Option<&Path> {
        self.binds
            .iter()
            .find(|b| b.container == container)
            .map(|b| b.host.as_path())
    }
}

/// One end of a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Node name.
    pub node: String,
    /// Interface name inside the node.
    pub iface: String,
}

/// A point-to-point link (a veth pair).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// First endpoint.
    pub a: Endpoint,
    /// Second endpoint.
    pub b: Endpoint,
}

/// A validated topology.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Lab name.
    pub name: String,
    /// The topology file.
    pub file: PathBuf,
    /// Nodes by name.
    pub nodes: BTreeMap<String, Node>,
    /// Links in file order.
    pub links: Vec<Link>,
}

impl Topology {
    /// Reads and validates a topology file.
    pub fn load(file: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        let file = std::path::absolute(file).map_err(|e| Error::io(file, e))?;
        Self::parse(&text, &file)
    }

    /// Validates topology `text` as if read from `file` (binds resolve against its directory).
    pub fn parse(text: &str, file: &Path) -> Result<Self> {
        let file_s = file.display().to_string();
        let raw: RawFile = serde_saphyr::from_str(text).map_err(|e| Error::Topology {
            file: file_s.clone(),
            message: e.to_string(),
        })?;
        let base = file.parent().unwrap_or(Path::new("/"));
        let topo_err = |message: String| Error::Topology {
            file: file_s.clone(),
            message,
        };
        let mut unsupported = Vec::new();
        unknown_keys(&raw.extra, "", &mut unsupported);

        let name = raw
            .name
            .ok_or_else(|| topo_err("missing `name`".to_owned()))?;
        validate_name(&name).map_err(|e| topo_err(format!("lab `name`: {e}")))?;
        let topology = raw
            .topology
            .ok_or_else(|| topo_err("missing `topology`".to_owned()))?;
        unknown_keys(&topology.extra, "topology.", &mut unsupported);

        let mut nodes = BTreeMap::new();
        for (node_name, rn) in topology.nodes {
            let at = format!("topology.nodes.{node_name}");
            validate_name(&node_name).map_err(|e| topo_err(format!("{at}: {e}")))?;
            let ns_len = netns_name(&name, &node_name).len();
            if ns_len > MAX_NAME_LEN {
                return Err(topo_err(format!(
                    "{at}: `clab-<lab>-<node>` is {ns_len} characters (max {MAX_NAME_LEN})"
                )));
            }
            unknown_keys(&rn.extra, &format!("{at}."), &mut unsupported);
            let kind = match rn.kind.as_deref() {
                Some("linux") => NodeKind::Linux,
                Some("bridge") => NodeKind::Bridge,
                Some(other) => {
                    unsupported.push(format!("{at}.kind `{other}` (only `linux` and `bridge`)"));
                    continue;
                }
                None => {
                    return Err(topo_err(format!(
                        "{at}: missing `kind` (node defaults are not supported)"
                    )));
                }
            };
            let binds = rn
                .binds
                .iter()
                .map(|b| {
                    parse_bind(b, base).map_err(|m| topo_err(format!("{at}.binds `{b}`: {m}")))
                })
                .collect::<Result<Vec<_>>>()?;
            let program = match kind {
                NodeKind::Bridge => {
                    validate_ifname(&node_name)
                        .map_err(|e| topo_err(format!("{at}: bridge name: {e}")))?;
                    for (key, used) in [
                        ("image", rn.image.is_some()),
                        ("binds", !binds.is_empty()),
                        ("cmd", rn.cmd.is_some()),
                    ] {
                        if used {
                            unsupported.push(format!("{at}.{key} on a `bridge` node"));
                        }
                    }
                    Program::None
                }
                NodeKind::Linux => {
                    let Some(image) = rn.image.as_deref() else {
                        return Err(topo_err(format!("{at}: a `linux` node needs an `image`")));
                    };
                    match images::program_for(image) {
                        Some(p) => {
                            if rn.cmd.is_some() && p != Program::Plain {
                                unsupported.push(format!("{at}.cmd with image `{image}` (only plain linux images take `cmd`)"));
                            }
                            p
                        }
                        None => {
                            unsupported.push(format!(
                                "{at}.image `{image}` (known: {})",
                                images::known_images()
                            ));
                            continue;
                        }
                    }
                }
            };
            nodes.insert(
                node_name.clone(),
                Node {
                    name: node_name,
                    kind,
                    image: rn.image,
                    program,
                    binds,
                    exec: rn.exec,
                    env: rn.env,
                    cmd: rn.cmd,
                },
            );
        }

        let mut links = Vec::new();
        let mut used: BTreeSet<(String, String)> = BTreeSet::new();
        for (i, rl) in topology.links.into_iter().enumerate() {
            let at = format!("topology.links[{i}]");
            unknown_keys(&rl.extra, &format!("{at}."), &mut unsupported);
            let Some(eps) = rl.endpoints else {
                if rl.extra.is_empty() {
                    return Err(topo_err(format!("{at}: missing `endpoints`")));
                }
                continue; // extended link format, already reported by its keys
            };
            if eps.len() != 2 {
                return Err(topo_err(format!(
                    "{at}: `endpoints` needs exactly 2 entries, found {}",
                    eps.len()
                )));
            }
            let mut parsed = Vec::new();
            for ep in &eps {
                let Some((node, iface)) = ep.split_once(':') else {
                    return Err(topo_err(format!(
                        "{at}: endpoint `{ep}` is not `node:interface`"
                    )));
                };
                if matches!(node, "host" | "mgmt-net" | "macvlan" | "ovs-bridge")
                    && !nodes.contains_key(node)
                {
                    unsupported.push(format!("{at} endpoint `{ep}` (`{node}` endpoints)"));
                    continue;
                }
                if !nodes.contains_key(node) {
                    // A node rejected above as unsupported is already reported.
                    if !unsupported
                        .iter()
                        .any(|u| u.starts_with(&format!("topology.nodes.{node}.")))
                    {
                        return Err(topo_err(format!(
                            "{at}: endpoint `{ep}` names unknown node `{node}`"
                        )));
                    }
                    continue;
                }
                validate_ifname(iface).map_err(|e| topo_err(format!("{at}: {e}")))?;
                if iface == "lo"
                    || (nodes.get(node).is_some_and(|n| n.kind == NodeKind::Bridge)
                        && iface == node)
                {
                    return Err(topo_err(format!("{at}: interface `{ep}` is reserved")));
                }
                if !used.insert((node.to_owned(), iface.to_owned())) {
                    return Err(topo_err(format!(
                        "{at}: interface `{ep}` is used by more than one link"
                    )));
                }
                parsed.push(Endpoint {
                    node: node.to_owned(),
                    iface: iface.to_owned(),
                });
            }
            // Fewer than two usable endpoints means the problem is already reported.
            if let [a, b] = parsed.as_slice() {
                links.push(Link {
                    a: a.clone(),
                    b: b.clone(),
                });
            }
        }

        if !unsupported.is_empty() {
            return Err(Error::Unsupported {
                file: file_s,
                features: unsupported,
            });
        }
        Ok(Self {
            name,
            file: file.to_owned(),
            nodes,
            links,
        })
    }

    /// The namespace name of `node` (containerlab's container name, `clab-<lab>-<node>`).
    pub fn netns_of(&self, node: &str) -> String {
        netns_name(&self.name, node)
    }
}

#[derive(Debug, Deserialize)]
struct NamesOnly {
    name: String,
    topology: Option<NodesOnly>,
}

#[derive(Debug, Deserialize)]
struct NodesOnly {
    #[serde(default)]
    nodes: BTreeMap<String, IgnoredAny>,
}

/// The lab name and node names of a topology file, read leniently (no validation), so `lab down`
/// works even for a file the runner would now reject.
pub fn names_of(file: &Path) -> Result<(String, Vec<String>)> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let raw: NamesOnly = serde_saphyr::from_str(&text).map_err(|e| Error::Topology {
        file: file.display().to_string(),
        message: e.to_string(),
    })?;
    validate_name(&raw.name)?;
    let nodes = raw
        .topology
        .map(|t| t.nodes.into_keys().collect())
        .unwrap_or_default();
    Ok((raw.name, nodes))
}

/// `clab-<lab>-<node>`.
pub fn netns_name(lab: &str, node: &str) -> String {
    format!("clab-{lab}-{node}")
}

fn unknown_keys(extra: &BTreeMap<String, IgnoredAny>, at: &str, out: &mut Vec<String>) {
    out.extend(extra.keys().map(|k| format!("`{at}{k}`")));
}

fn parse_bind(spec: &str, base: &Path) -> std::result::Result<Bind, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, container) = match parts.as_slice() {
        [h, c] | [h, c, "ro" | "rw"] => (*h, *c),
        _ => return Err("expected `host-path:container-path[:ro|rw]`".to_owned()),
    };
    if !container.starts_with('/') {
        return Err("the container path must be absolute".to_owned());
    }
    let host = if Path::new(host).is_absolute() {
        PathBuf::from(host)
    } else {
        base.join(host)
    };
    if !host.exists() {
        return Err(format!("host path {} does not exist", host.display()));
    }
    Ok(Bind {
        host,
        container: container.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Topology> {
        Topology::parse(yaml, Path::new("/nonexistent/lab.clab.yml"))
    }

    #[test]
    fn plain_linux_nodes_links_and_bridges_validate() {
        let t = parse(
            "name: t1\ntopology:\n  nodes:\n    a: {kind: linux, image: alpine:3, exec: ['ip addr add 10.0.0.1/24 dev eth1'], env: {X: y}, cmd: 'sleep 1000'}\n    \
             b: {kind: linux, image: alpine}\n    sw: {kind: bridge}\n  links:\n    - endpoints: ['a:eth1', 'sw:p1']\n    - endpoints: ['b:eth1', 'sw:p2']\n",
        )
        .expect("valid");
        assert_eq!(t.nodes.len(), 3);
        assert_eq!(t.nodes["sw"].kind, NodeKind::Bridge);
        assert_eq!(t.nodes["a"].program, Program::Plain);
        assert_eq!(
            t.links[1].b,
            Endpoint {
                node: "sw".into(),
                iface: "p2".into()
            }
        );
        assert_eq!(t.netns_of("a"), "clab-t1-a");
    }

    #[test]
    fn unsupported_features_are_all_named() {
        let err = parse(
            "name: t2\nmgmt: {network: x}\ntopology:\n  kinds: {linux: {image: alpine}}\n  nodes:\n    \
             r1: {kind: nokia_srlinux, image: ghcr.io/nokia/srlinux}\n    a: {kind: linux, image: alpine, mgmt-ipv4: 172.20.20.2}\n    \
             b: {kind: linux, image: someone/unknown:1}\n  links:\n    - endpoints: ['a:eth1', 'host:veth9']\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        for needle in [
            "`mgmt`",
            "`topology.kinds`",
            "nokia_srlinux",
            "mgmt-ipv4",
            "someone/unknown",
            "host:veth9",
        ] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
    }

    #[test]
    fn shipped_bgp_ecmp_topology_validates() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("containerlab/bgp-ecmp.clab.yml");
        let t = Topology::load(&file).expect("bgp-ecmp.clab.yml is valid");
        assert_eq!(t.name, "bgp-ecmp");
        assert_eq!(t.nodes.len(), 8);
        assert_eq!(t.links.len(), 7);
        assert_eq!(t.nodes["tor"].program, Program::Frr);
        assert!(
            t.nodes["tor"]
                .bind_for(images::FRR_CONF)
                .is_some_and(Path::exists)
        );
        for n in ["node1", "node2", "node3"] {
            assert_eq!(t.nodes[n].program, Program::Speaker);
            assert!(
                t.nodes[n]
                    .bind_for(images::AGENT_CONF)
                    .is_some_and(Path::exists)
            );
        }
    }

    #[test]
    fn shipped_l2_topology_validates() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("containerlab/l2.clab.yml");
        let t = Topology::load(&file).expect("l2.clab.yml is valid");
        assert_eq!(t.name, "l2");
        assert_eq!(t.nodes["sw"].kind, NodeKind::Bridge);
        assert_eq!(t.links.len(), 6);
        for n in ["node1", "node2", "node3"] {
            assert_eq!(t.nodes[n].program, Program::Speaker);
            // The one agent runs there too (lb-ipam + L2), not the standalone announcer.
            assert!(
                t.nodes[n]
                    .bind_for(images::AGENT_CONF)
                    .is_some_and(Path::exists)
            );
            assert!(t.nodes[n].bind_for(images::L2_CONF).is_none());
        }
    }

    #[test]
    fn shipped_dual_stack_topology_validates() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("containerlab/dual-stack.clab.yml");
        let t = Topology::load(&file).expect("dual-stack.clab.yml is valid");
        assert_eq!(t.name, "dual-stack");
        assert_eq!(t.links.len(), 3);
        assert_eq!(t.nodes["tor"].program, Program::Frr);
        for n in ["node1", "node2"] {
            assert_eq!(t.nodes[n].program, Program::Speaker);
            assert!(
                t.nodes[n]
                    .bind_for(images::AGENT_CONF)
                    .is_some_and(Path::exists)
            );
        }
    }

    #[test]
    fn yaml_errors_carry_a_location_and_bad_links_are_rejected() {
        let err = parse("name: t3\ntopology:\n  nodes: [\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("line") || err.contains(':'), "{err}");
        let err = parse("name: t4\ntopology:\n  nodes:\n    a: {kind: linux, image: alpine}\n  links:\n    - endpoints: ['a:eth1', 'zz:eth1']\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unknown node `zz`"), "{err}");
        let err = parse("name: t5\ntopology:\n  nodes:\n    a: {kind: linux, image: alpine}\n    b: {kind: linux, image: alpine}\n  links:\n    - endpoints: ['a:eth1', 'b:eth1']\n    - endpoints: ['a:eth1', 'b:eth2']\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("more than one link"), "{err}");
    }
}
