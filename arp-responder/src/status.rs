//! The status snapshot the driver publishes (for `speaker l2 [--json]`), its table, and its
//! metrics (encoded with `prometheus-client`). Pure: the driver fills the snapshot, callers
//! render it.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use lb_ipam::endpoint::{encode_family, label_value, render};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::Serialize;

/// One interface the announcer looked at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InterfaceStatus {
    /// Name.
    pub name: String,
    /// Kernel index.
    pub ifindex: u32,
    /// MAC address.
    pub mac: String,
    /// Selected by include/exclude rules (and so listened on).
    pub selected: bool,
}

/// One service IP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VipStatus {
    /// The IP.
    pub vip: IpAddr,
    /// Services using it.
    pub services: Vec<String>,
    /// Nodes eligible to lead it.
    pub eligible: Vec<String>,
    /// The leader as this node sees it.
    pub leader: Option<String>,
    /// Whether this node answers for it.
    pub led_by_me: bool,
    /// Interfaces it is answered on (when led here).
    pub interfaces: Vec<String>,
    /// ARP replies / NAs sent by this node for it.
    pub replies_sent: u64,
    /// Gratuitous ARPs / unsolicited NAs sent by this node for it.
    pub garps_sent: u64,
}

/// The whole snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Default)]
pub struct Status {
    /// This node.
    pub node: String,
    /// Whether it hears a majority of the membership.
    pub quorum: bool,
    /// Whether its fencing lease is valid.
    pub lease_valid: bool,
    /// Whether it answers through a store outage on wire quorum (lease run out, within the
    /// outage grace).
    pub store_outage: bool,
    /// Current membership.
    pub members: Vec<String>,
    /// Peers heard within the dead interval.
    pub alive_peers: Vec<String>,
    /// Interfaces.
    pub interfaces: Vec<InterfaceStatus>,
    /// Service IPs.
    pub vips: Vec<VipStatus>,
    /// Frames not answered, by reason.
    pub drops: BTreeMap<String, u64>,
    /// Heartbeat frames sent.
    pub heartbeats_sent: u64,
    /// Heartbeat frames received from peers and accepted.
    pub heartbeats_received: u64,
    /// `"hmac-sha256"` when heartbeats are authenticated with a shared key, `"none"` otherwise.
    pub heartbeat_auth: String,
    /// Heartbeat frames rejected, by reason (`bad_auth`, `replay`, `stale`, `unknown_node`, ..).
    pub heartbeats_rejected: BTreeMap<String, u64>,
    /// Senders whose state (liveness, claims, sequence numbers) is kept.
    pub peers_tracked: u64,
}

/// The L2 announcer's metrics from one snapshot, for a `prometheus-client` collector: the agent's
/// collector calls this and `herald-l2` registers [`L2Collector`], so there is one encoding.
pub fn encode_metrics(s: &Status, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let node = label_value(&s.node);
    let by_node = || vec![("node", node.clone())];
    let by_vip = |v: &VipStatus| vec![("node", node.clone()), ("vip", v.vip.to_string())];
    let flag = |b: bool| ConstGauge::new(u64::from(b));
    encode_family(
        encoder,
        "herald_l2_quorum",
        "1 if this node hears a majority of the membership.",
        [(by_node(), flag(s.quorum))],
    )?;
    encode_family(
        encoder,
        "herald_l2_lease_valid",
        "1 if this node's fencing lease is valid.",
        [(by_node(), flag(s.lease_valid))],
    )?;
    encode_family(
        encoder,
        "herald_l2_store_outage",
        "1 while this node answers through a store outage on wire quorum of the last membership.",
        [(by_node(), flag(s.store_outage))],
    )?;
    encode_family(
        encoder,
        "herald_l2_peers_alive",
        "Peers heard within the dead interval.",
        [(by_node(), ConstGauge::new(s.alive_peers.len() as u64))],
    )?;
    encode_family(
        encoder,
        "herald_l2_leader",
        "1 if this node is the VIP's leader (answers ARP/NDP for it), 0 otherwise.",
        s.vips.iter().map(|v| (by_vip(v), flag(v.led_by_me))),
    )?;
    encode_family(
        encoder,
        "herald_l2_leader_info",
        "The leader of each VIP as this node sees it, and the interfaces it answers on.",
        s.vips.iter().map(|v| {
            let mut labels = by_vip(v);
            labels.push(("leader", label_value(v.leader.as_deref().unwrap_or(""))));
            labels.push(("interfaces", label_value(&v.interfaces.join(","))));
            (labels, ConstGauge::new(1u64))
        }),
    )?;
    encode_family(
        encoder,
        "herald_l2_replies_sent",
        "ARP replies and neighbor advertisements sent per VIP.",
        s.vips
            .iter()
            .map(|v| (by_vip(v), ConstCounter::new(v.replies_sent))),
    )?;
    encode_family(
        encoder,
        "herald_l2_garps_sent",
        "Gratuitous ARPs and unsolicited NAs sent per VIP.",
        s.vips
            .iter()
            .map(|v| (by_vip(v), ConstCounter::new(v.garps_sent))),
    )?;
    encode_family(
        encoder,
        "herald_l2_drops",
        "Received frames not answered, by reason.",
        s.drops.iter().map(|(reason, n)| {
            (
                vec![("node", node.clone()), ("reason", label_value(reason))],
                ConstCounter::new(*n),
            )
        }),
    )?;
    encode_family(
        encoder,
        "herald_l2_heartbeats_sent",
        "Heartbeat frames sent.",
        [(by_node(), ConstCounter::new(s.heartbeats_sent))],
    )?;
    encode_family(
        encoder,
        "herald_l2_heartbeats_received",
        "Heartbeat frames received from peers.",
        [(by_node(), ConstCounter::new(s.heartbeats_received))],
    )?;
    encode_family(
        encoder,
        "herald_l2_heartbeats_rejected",
        "Heartbeat frames rejected, by reason (bad_auth, replay, stale, unknown_node, ...).",
        s.heartbeats_rejected.iter().map(|(reason, n)| {
            (
                vec![("node", node.clone()), ("reason", label_value(reason))],
                ConstCounter::new(*n),
            )
        }),
    )?;
    encode_family(
        encoder,
        "herald_l2_heartbeats_authenticated",
        "1 if heartbeats are authenticated with a shared key (auth.keyFile), 0 if anyone on the \
         segment can forge them.",
        [(by_node(), flag(s.heartbeat_auth != "none"))],
    )?;
    encode_family(
        encoder,
        "herald_l2_peers_tracked",
        "Senders whose heartbeat state is kept (bounded; silent ones are pruned).",
        [(by_node(), ConstGauge::new(s.peers_tracked))],
    )
}

/// A collector over one snapshot (`herald-l2` builds one per scrape).
#[derive(Debug, Clone)]
pub struct L2Collector(pub Status);

impl Collector for L2Collector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        encode_metrics(&self.0, &mut encoder)
    }
}

/// Renders the snapshot in the OpenMetrics text format.
pub fn render_prometheus(s: &Status) -> Result<String, fmt::Error> {
    render(L2Collector(s.clone()))
}

/// Renders the snapshot as the table `speaker l2` prints.
pub fn render_table(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "node {}  quorum {}  lease {}  peers [{}]",
        s.node,
        if s.quorum { "yes" } else { "no" },
        match (s.lease_valid, s.store_outage) {
            (true, _) => "valid",
            (false, true) => "expired (store unreachable: riding out on wire quorum)",
            (false, false) => "expired",
        },
        s.alive_peers.join(",")
    );
    let _ = writeln!(
        o,
        "{:<40} {:<16} {:<16} {:>8} {:>6}",
        "VIP", "LEADER", "INTERFACES", "REPLIES", "GARPS"
    );
    for v in &s.vips {
        let _ = writeln!(
            o,
            "{:<40} {:<16} {:<16} {:>8} {:>6}",
            v.vip.to_string(),
            v.leader.as_deref().unwrap_or("-"),
            if v.interfaces.is_empty() {
                "-".to_owned()
            } else {
                v.interfaces.join(",")
            },
            v.replies_sent,
            v.garps_sent
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_have_one_sample_per_vip_and_escape_labels() {
        let s = Status {
            node: "n\"1".into(),
            quorum: true,
            vips: vec![VipStatus {
                vip: "10.0.0.1".parse().expect("ip"),
                services: vec!["default/web".into()],
                eligible: vec!["n\"1".into()],
                leader: Some("n\"1".into()),
                led_by_me: true,
                interfaces: vec!["eth0".into()],
                replies_sent: 7,
                garps_sent: 8,
            }],
            drops: [("not-leader".to_owned(), 2)].into(),
            ..Status::default()
        };
        let text = render_prometheus(&s).expect("render");
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "herald_l2_replies_sent_total{node=\"n\\\"1\",vip=\"10.0.0.1\"} 7",
            "herald_l2_garps_sent_total{node=\"n\\\"1\",vip=\"10.0.0.1\"} 8",
            "herald_l2_leader{node=\"n\\\"1\",vip=\"10.0.0.1\"} 1",
            "herald_l2_leader_info{node=\"n\\\"1\",vip=\"10.0.0.1\",leader=\"n\\\"1\",interfaces=\"eth0\"} 1",
            "herald_l2_quorum{node=\"n\\\"1\"} 1",
            "herald_l2_drops_total{node=\"n\\\"1\",reason=\"not-leader\"} 2",
            "# TYPE herald_l2_replies_sent counter",
            "# EOF",
        ] {
            assert!(lines.contains(&want), "missing {want}:\n{text}");
        }
        let samples = lines
            .iter()
            .filter(|l| l.starts_with("herald_l2_leader{"))
            .count();
        assert_eq!(samples, 1, "{text}");
        let table = render_table(&s);
        assert!(table.contains("10.0.0.1") && table.contains("eth0"));
    }
}
