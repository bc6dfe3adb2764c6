//! The DSR proof of `lab demo`, as pure functions: the service as the nodes' agent config defines
//! it (its address is lb-ipam's, learnt from the running agents), parsing of the packet captures taken on the nodes' uplinks (`tcpdump -nn -l`), and
//! the analysis that ties each client flow to the node it entered at, the node whose backend
//! answered, and the source address its replies left that node with.
//!
//! The captures themselves (tcpdump inside the node namespaces) are run by [`crate::demo`]; nothing
//! here does I/O except [`DemoService::load`], which reads the config file.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

/// The tcpdump filter for a node's uplink: Geneve (UDP 6081) and TCP from the service address.
pub fn capture_filter(service: &DemoService) -> String {
    format!(
        "udp port 6081 or (tcp and src host {} and src port {})",
        service.vip, service.port
    )
}

/// The part of the agent's config the demo needs (other keys are ignored here; the agent itself
/// rejects unknown ones).
#[derive(Debug, Deserialize)]
struct AgentFile {
    #[serde(default)]
    services: Vec<ServiceEntry>,
    #[serde(default)]
    nodes: Vec<NodeEntry>,
    datapath: Option<DatapathEntry>,
}

#[derive(Debug, Deserialize)]
struct DatapathEntry {
    #[serde(default)]
    interfaces: Vec<InterfaceEntry>,
}

#[derive(Debug, Deserialize)]
struct InterfaceEntry {
    name: String,
    #[serde(default)]
    xdp: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NodeEntry {
    name: String,
    address: IpAddr,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceEntry {
    name: String,
    #[serde(default)]
    ports: Vec<PortEntry>,
    #[serde(default)]
    endpoints: Vec<EndpointEntry>,
}

#[derive(Debug, Deserialize)]
struct PortEntry {
    port: u16,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndpointEntry {
    ip: IpAddr,
    node_name: String,
    port: Option<u16>,
}

/// The service the demo sends requests to: the first service of the nodes' agent config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoService {
    /// Service name.
    pub name: String,
    /// Service address: lb-ipam's allocation, read from the running agents (unspecified until
    /// then; no config file names it).
    pub vip: IpAddr,
    /// Service port.
    pub port: u16,
    /// Backends: (pod address, underlay address of its node, IPv4 or IPv6).
    pub backends: Vec<(SocketAddr, IpAddr)>,
    /// The uplink the XDP load balancer runs on (where captures are taken).
    pub uplink: String,
}

impl DemoService {
    /// Parses an agent config's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let bad = |message: String| Error::Topology {
            file: origin.to_owned(),
            message,
        };
        let f: AgentFile =
            serde_saphyr::from_str(text).map_err(|e| bad(format!("agent config: {e}")))?;
        let s = f
            .services
            .into_iter()
            .next()
            .ok_or_else(|| bad("the agent config defines no service".to_owned()))?;
        let port = s
            .ports
            .first()
            .map(|p| p.port)
            .ok_or_else(|| bad(format!("service {} has no port", s.name)))?;
        let uplink = f
            .datapath
            .and_then(|d| {
                d.interfaces
                    .into_iter()
                    .find(|i| i.xdp.as_deref() != Some("none"))
            })
            .map(|i| i.name)
            .ok_or_else(|| bad("the agent config has no datapath XDP interface".to_owned()))?;
        let nodes: BTreeMap<String, IpAddr> =
            f.nodes.into_iter().map(|n| (n.name, n.address)).collect();
        let mut backends = Vec::new();
        for e in &s.endpoints {
            let node = nodes.get(&e.node_name).ok_or_else(|| {
                bad(format!(
                    "endpoint {} is on unknown node {}",
                    e.ip, e.node_name
                ))
            })?;
            backends.push((SocketAddr::new(e.ip, e.port.unwrap_or(port)), *node));
        }
        Ok(Self {
            name: s.name,
            vip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
            backends,
            uplink,
        })
    }

    /// Reads and parses the agent config at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }
}

/// What one capture line shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A Geneve packet between nodes carrying a client's packet (outer IPv4 or IPv6).
    Geneve {
        /// Outer source: the node the flow entered at.
        outer_src: IpAddr,
        /// Outer destination: the backend's node.
        outer_dst: IpAddr,
        /// The client's source port in the inner packet.
        client_port: u16,
        /// The Geneve header carries options (the DSR option, on the flow's first packets).
        with_option: bool,
    },
    /// A TCP segment from the service address to a client port.
    Reply {
        /// The client's port.
        client_port: u16,
    },
}

/// `10.0.2.2.55362`, `10.0.2.2.6081:` or `fd00:1:2::2.6081:` → (address, port).
fn addr_port(token: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = token.trim_end_matches(':').rsplit_once('.')?;
    Some((a.parse().ok()?, p.parse().ok()?))
}

/// Where the first `IP ` or `IP6 ` header in tcpdump text starts, and its length.
fn ip_header(text: &str) -> Option<(usize, usize)> {
    let v4 = text.find("IP ").map(|i| (i, 3));
    let v6 = text.find("IP6 ").map(|i| (i, 4));
    match (v4, v6) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The `A > B` pair after the first `IP ` or `IP6 ` in `text`.
fn ip_pair(text: &str) -> Option<((IpAddr, u16), (IpAddr, u16))> {
    let (at, len) = ip_header(text)?;
    let rest = &text[at + len..];
    let mut words = rest.split_whitespace();
    let src = addr_port(words.next()?)?;
    if words.next()? != ">" {
        return None;
    }
    let dst = addr_port(words.next()?)?;
    Some((src, dst))
}

/// Parses one line of `tcpdump -nn -l` output taken with [`capture_filter`].
pub fn parse_capture_line(line: &str, vip: IpAddr, port: u16) -> Option<Seen> {
    let ((src, _), (dst, dport)) = ip_pair(line)?;
    if let Some(g) = line.find("Geneve") {
        let (outer_src, outer_dst) = (src, dst);
        if dport != 6081 {
            return None;
        }
        let geneve = &line[g..];
        let ((_, client_port), _) = ip_pair(geneve)?;
        // tcpdump prints `options [N bytes]` between the Geneve header and the inner packet.
        let inner = ip_header(geneve).map_or(geneve.len(), |(at, _)| at);
        let with_option = geneve[..inner].contains("options [");
        return Some(Seen::Geneve {
            outer_src,
            outer_dst,
            client_port,
            with_option,
        });
    }
    let ((src, sport), (_, client_port)) = ip_pair(line)?;
    (src == vip && sport == port).then_some(Seen::Reply { client_port })
}

/// One client flow, reconstructed from the captures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowPath {
    /// The client's source port.
    pub client_port: u16,
    /// What the backend answered (its name).
    pub answer: String,
    /// The node whose uplink the replies left with the service address as source.
    pub reply_node: Option<String>,
    /// The node the request entered at: the outer source of the Geneve packets that reached
    /// `reply_node`, or `reply_node` itself when none did (a local backend).
    pub entry_node: Option<String>,
    /// Outer (source, destination) of the Geneve packets, when the flow crossed nodes.
    pub geneve: Option<(IpAddr, IpAddr)>,
    /// One of those Geneve packets carried options (the DSR option).
    pub geneve_option: bool,
}

impl FlowPath {
    /// Entered at one node, answered from another.
    pub fn crossed(&self) -> bool {
        self.geneve.is_some() && self.entry_node.is_some() && self.entry_node != self.reply_node
    }
}

/// Ties the answered requests (client port → answer) to the captures per node (`seen`), given
/// each node's underlay address (`node_addrs`: address → node name).
pub fn flow_paths(
    answers: &BTreeMap<u16, String>,
    seen: &BTreeMap<String, Vec<Seen>>,
    node_addrs: &BTreeMap<IpAddr, String>,
) -> Vec<FlowPath> {
    answers
        .iter()
        .map(|(port, answer)| {
            let replied: Vec<&String> = seen
                .iter()
                .filter(|(_, s)| s.contains(&Seen::Reply { client_port: *port }))
                .map(|(n, _)| n)
                .collect();
            let reply_node = match replied.as_slice() {
                [one] => Some((*one).clone()),
                _ => None,
            };
            let tunnelled: Vec<(IpAddr, IpAddr, bool)> = reply_node
                .as_ref()
                .and_then(|n| seen.get(n).map(|v| (n, v)))
                .map(|(n, v)| {
                    v.iter()
                        .filter_map(|s| match s {
                            Seen::Geneve {
                                outer_src,
                                outer_dst,
                                client_port,
                                with_option,
                            } if client_port == port && node_addrs.get(outer_dst) == Some(n) => {
                                Some((*outer_src, *outer_dst, *with_option))
                            }
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let geneve = tunnelled.first().map(|(s, d, _)| (*s, *d));
            let geneve_option = tunnelled.iter().any(|(_, _, o)| *o);
            let entry_node = match geneve {
                Some((src, _)) => node_addrs.get(&src).cloned(),
                None => reply_node.clone(),
            };
            FlowPath {
                client_port: *port,
                answer: answer.clone(),
                reply_node,
                entry_node,
                geneve,
                geneve_option,
            }
        })
        .collect()
}

/// Per node: (flows that entered there with who answered them, flows whose replies left there).
pub fn per_node(
    paths: &[FlowPath],
    nodes: &[&str],
) -> BTreeMap<String, (BTreeMap<String, usize>, usize)> {
    let mut out: BTreeMap<String, (BTreeMap<String, usize>, usize)> = nodes
        .iter()
        .map(|n| ((*n).to_owned(), (BTreeMap::new(), 0)))
        .collect();
    for p in paths {
        if let Some(e) = &p.entry_node {
            *out.entry(e.clone())
                .or_default()
                .0
                .entry(p.answer.clone())
                .or_insert(0) += 1;
        }
        if let Some(r) = &p.reply_node {
            out.entry(r.clone()).or_default().1 += 1;
        }
    }
    out
}

/// Nodes that appear as entry points of flows, for the summary.
pub fn entry_nodes(paths: &[FlowPath]) -> BTreeSet<String> {
    paths.iter().filter_map(|p| p.entry_node.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: &str = "10.200.0.10";

    fn vip() -> IpAddr {
        VIP.parse().expect("vip")
    }

    // Captured on node3's eth1 in the bgp-ecmp lab (tcpdump 4.99.3).
    const GENEVE_SYN: &str = "03:33:28.496036 IP 10.0.2.2.55362 > 10.0.3.2.6081: Geneve, Flags [none], vni 0x0, options [12 bytes]: IP 10.0.100.10.41001 > 10.244.3.10.8080: Flags [S], seq 1141273728, win 64240, options [mss 1460,sackOK,TS val 3719189152 ecr 0,nop,wscale 10], length 0";
    const REPLY: &str = "03:33:28.496066 IP 10.200.0.10.80 > 10.0.100.10.41001: Flags [S.], seq 1610403577, ack 1141273729, win 65160, options [mss 1460,sackOK,TS val 3612045289 ecr 3719189152,nop,wscale 10], length 0";

    fn ip4(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn capture_lines_parse_into_geneve_and_replies() {
        assert_eq!(
            parse_capture_line(GENEVE_SYN, vip(), 80),
            Some(Seen::Geneve {
                outer_src: ip4("10.0.2.2"),
                outer_dst: ip4("10.0.3.2"),
                client_port: 41001,
                with_option: true,
            })
        );
        // Later packets of the flow carry no option.
        let ack = "03:33:28.496086 IP 10.0.2.2.55362 > 10.0.3.2.6081: Geneve, Flags [none], vni 0x0: IP 10.0.100.10.41001 > 10.244.3.10.8080: Flags [.], ack 1610403578, win 63, options [nop,nop,TS val 3719189152 ecr 3612045289], length 0";
        assert!(matches!(
            parse_capture_line(ack, vip(), 80),
            Some(Seen::Geneve {
                with_option: false,
                ..
            })
        ));
        assert_eq!(
            parse_capture_line(REPLY, vip(), 80),
            Some(Seen::Reply { client_port: 41001 })
        );
        // From another port or address: not a service reply.
        assert_eq!(parse_capture_line(REPLY, vip(), 443), None);
        assert_eq!(
            parse_capture_line(
                &REPLY.replace("10.200.0.10.80", "10.244.3.10.8080"),
                vip(),
                80
            ),
            None
        );
        assert_eq!(parse_capture_line("garbage", vip(), 80), None);
        assert_eq!(parse_capture_line("", vip(), 80), None);
    }

    // Geneve over an IPv6 underlay (tcpdump 4.99.3 prints the outer header as `IP6`), carrying
    // an IPv4 and an IPv6 client packet.
    const GENEVE6_V4: &str = "00:12:01.100200 IP6 fd00:1:1::2.49877 > fd00:1:2::2.6081: Geneve, Flags [none], vni 0x0, options [12 bytes]: IP 10.1.100.10.20001 > 10.245.2.10.8080: Flags [S], seq 1, win 64240, length 0";
    const GENEVE6_V6: &str = "00:12:01.100300 IP6 fd00:1:1::2.49877 > fd00:1:2::2.6081: Geneve, Flags [none], vni 0x0, options [24 bytes]: IP6 fd00:1:100::10.20002 > fd00:245:2::10.8080: Flags [S], seq 1, win 64800, length 0";

    #[test]
    fn geneve_in_outer_ipv6_parses_with_either_inner_family() {
        let v6 = |s: &str| -> IpAddr { s.parse().expect("ip") };
        for (line, port) in [(GENEVE6_V4, 20001), (GENEVE6_V6, 20002)] {
            assert_eq!(
                parse_capture_line(line, v6("fd00:201::10"), 80),
                Some(Seen::Geneve {
                    outer_src: v6("fd00:1:1::2"),
                    outer_dst: v6("fd00:1:2::2"),
                    client_port: port,
                    with_option: true,
                }),
                "{line}"
            );
        }
        let reply = "00:12:01.100400 IP6 fd00:201::10.80 > fd00:1:100::10.20002: Flags [S.], seq 2, ack 2, win 64260, length 0";
        assert_eq!(
            parse_capture_line(reply, v6("fd00:201::10"), 80),
            Some(Seen::Reply { client_port: 20002 })
        );
    }

    fn addrs() -> BTreeMap<IpAddr, String> {
        (1..=3)
            .map(|n| (ip4(&format!("10.0.{n}.2")), format!("node{n}")))
            .collect()
    }

    #[test]
    fn flows_are_tied_to_entry_and_reply_nodes() {
        let answers: BTreeMap<u16, String> = [
            (41001, "pod3 on node3".to_owned()),
            (41002, "pod1 on node1".to_owned()),
            (41003, "pod2 on node2".to_owned()),
        ]
        .into();
        let seen: BTreeMap<String, Vec<Seen>> = [
            (
                "node3".to_owned(),
                vec![
                    parse_capture_line(GENEVE_SYN, vip(), 80).expect("geneve"),
                    Seen::Reply { client_port: 41001 },
                ],
            ),
            ("node1".to_owned(), vec![Seen::Reply { client_port: 41002 }]),
            ("node2".to_owned(), vec![]),
        ]
        .into();
        let paths = flow_paths(&answers, &seen, &addrs());
        assert_eq!(paths.len(), 3);
        let p = &paths[0];
        assert_eq!(p.reply_node.as_deref(), Some("node3"));
        assert_eq!(p.entry_node.as_deref(), Some("node2"));
        assert!(p.crossed() && p.geneve_option);
        let local = &paths[1];
        assert_eq!(local.entry_node.as_deref(), Some("node1"));
        assert!(!local.crossed(), "local backend: no Geneve");
        let unseen = &paths[2];
        assert_eq!((unseen.reply_node.clone(), unseen.crossed()), (None, false));
        let table = per_node(&paths, &["node1", "node2", "node3"]);
        assert_eq!(table["node2"].0.get("pod3 on node3"), Some(&1));
        assert_eq!(table["node2"].1, 0);
        assert_eq!(table["node3"].1, 1);
        assert_eq!(
            table["node1"],
            ([("pod1 on node1".to_owned(), 1)].into(), 1)
        );
        assert_eq!(entry_nodes(&paths).len(), 2);
    }

    #[test]
    fn a_reply_seen_on_two_nodes_has_no_single_reply_node() {
        let answers: BTreeMap<u16, String> = [(5, "x".to_owned())].into();
        let seen: BTreeMap<String, Vec<Seen>> = [
            ("node1".to_owned(), vec![Seen::Reply { client_port: 5 }]),
            ("node2".to_owned(), vec![Seen::Reply { client_port: 5 }]),
        ]
        .into();
        assert_eq!(flow_paths(&answers, &seen, &addrs())[0].reply_node, None);
    }

    #[test]
    fn the_shipped_agent_config_defines_the_demo_service_but_not_its_address() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("containerlab/bgp-ecmp/node1/herald.yaml");
        let mut s = DemoService::load(&path).expect("parse");
        assert!(s.vip.is_unspecified(), "no config names the VIP");
        assert_eq!((s.port, s.uplink.as_str()), (80, "eth1"));
        assert_eq!(
            s.backends[1],
            (
                "10.244.2.10:8080".parse().expect("addr"),
                IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2))
            )
        );
        assert_eq!(s.backends.len(), 3);
        s.vip = vip();
        assert_eq!(
            capture_filter(&s),
            "udp port 6081 or (tcp and src host 10.200.0.10 and src port 80)"
        );
    }
}
