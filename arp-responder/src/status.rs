//! The status snapshot the driver publishes (for `speaker l2 [--json]`) and its rendering in the
//! Prometheus text exposition format. Pure: the driver fills the snapshot, callers render it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

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

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the snapshot in the Prometheus text format (version 0.0.4).
pub fn render_prometheus(s: &Status) -> String {
    let mut o = String::new();
    let node = esc(&s.node);
    let gauge = |o: &mut String, name: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
    };
    let counter = |o: &mut String, name: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
    };
    gauge(
        &mut o,
        "herald_l2_quorum",
        "1 if this node hears a majority of the membership.",
    );
    let _ = writeln!(
        o,
        "herald_l2_quorum{{node=\"{node}\"}} {}",
        u8::from(s.quorum)
    );
    gauge(
        &mut o,
        "herald_l2_lease_valid",
        "1 if this node's fencing lease is valid.",
    );
    let _ = writeln!(
        o,
        "herald_l2_lease_valid{{node=\"{node}\"}} {}",
        u8::from(s.lease_valid)
    );
    gauge(
        &mut o,
        "herald_l2_peers_alive",
        "Peers heard within the dead interval.",
    );
    let _ = writeln!(
        o,
        "herald_l2_peers_alive{{node=\"{node}\"}} {}",
        s.alive_peers.len()
    );
    gauge(
        &mut o,
        "herald_l2_vip_led",
        "1 if this node answers ARP/NDP for the VIP.",
    );
    for v in &s.vips {
        let _ = writeln!(
            o,
            "herald_l2_vip_led{{node=\"{node}\",vip=\"{}\"}} {}",
            v.vip,
            u8::from(v.led_by_me)
        );
    }
    gauge(
        &mut o,
        "herald_l2_vip_leader_info",
        "The leader of each VIP as this node sees it.",
    );
    for v in &s.vips {
        let leader = esc(v.leader.as_deref().unwrap_or(""));
        let ifaces = esc(&v.interfaces.join(","));
        let _ = writeln!(
            o,
            "herald_l2_vip_leader_info{{node=\"{node}\",vip=\"{}\",leader=\"{leader}\",interfaces=\"{ifaces}\"}} 1",
            v.vip
        );
    }
    counter(
        &mut o,
        "herald_l2_replies_sent_total",
        "ARP replies and neighbor advertisements sent per VIP.",
    );
    for v in &s.vips {
        let _ = writeln!(
            o,
            "herald_l2_replies_sent_total{{node=\"{node}\",vip=\"{}\"}} {}",
            v.vip, v.replies_sent
        );
    }
    counter(
        &mut o,
        "herald_l2_garps_sent_total",
        "Gratuitous ARPs and unsolicited NAs sent per VIP.",
    );
    for v in &s.vips {
        let _ = writeln!(
            o,
            "herald_l2_garps_sent_total{{node=\"{node}\",vip=\"{}\"}} {}",
            v.vip, v.garps_sent
        );
    }
    counter(
        &mut o,
        "herald_l2_drops_total",
        "Received frames not answered, by reason.",
    );
    for (reason, n) in &s.drops {
        let _ = writeln!(
            o,
            "herald_l2_drops_total{{node=\"{node}\",reason=\"{}\"}} {n}",
            esc(reason)
        );
    }
    counter(
        &mut o,
        "herald_l2_heartbeats_sent_total",
        "Heartbeat frames sent.",
    );
    let _ = writeln!(
        o,
        "herald_l2_heartbeats_sent_total{{node=\"{node}\"}} {}",
        s.heartbeats_sent
    );
    counter(
        &mut o,
        "herald_l2_heartbeats_received_total",
        "Heartbeat frames received from peers.",
    );
    let _ = writeln!(
        o,
        "herald_l2_heartbeats_received_total{{node=\"{node}\"}} {}",
        s.heartbeats_received
    );
    counter(
        &mut o,
        "herald_l2_heartbeats_rejected_total",
        "Heartbeat frames rejected, by reason (bad_auth, replay, stale, unknown_node, ...).",
    );
    for (reason, n) in &s.heartbeats_rejected {
        let _ = writeln!(
            o,
            "herald_l2_heartbeats_rejected_total{{node=\"{node}\",reason=\"{}\"}} {n}",
            esc(reason)
        );
    }
    gauge(
        &mut o,
        "herald_l2_heartbeats_authenticated",
        "1 if heartbeats are authenticated with a shared key (auth.keyFile), 0 if anyone on the segment can forge them.",
    );
    let _ = writeln!(
        o,
        "herald_l2_heartbeats_authenticated{{node=\"{node}\"}} {}",
        u8::from(s.heartbeat_auth != "none")
    );
    gauge(
        &mut o,
        "herald_l2_peers_tracked",
        "Senders whose heartbeat state is kept (bounded; silent ones are pruned).",
    );
    let _ = writeln!(
        o,
        "herald_l2_peers_tracked{{node=\"{node}\"}} {}",
        s.peers_tracked
    );
    o
}

/// Renders the snapshot as the table `speaker l2` prints.
pub fn render_table(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "node {}  quorum {}  lease {}  peers [{}]",
        s.node,
        if s.quorum { "yes" } else { "no" },
        if s.lease_valid { "valid" } else { "expired" },
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
    fn prometheus_text_has_one_sample_per_vip_and_escapes_labels() {
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
            ..Status::default()
        };
        let text = render_prometheus(&s);
        assert!(
            text.contains("herald_l2_replies_sent_total{node=\"n\\\"1\",vip=\"10.0.0.1\"} 7\n"),
            "{text}"
        );
        assert!(text.contains("herald_l2_garps_sent_total{node=\"n\\\"1\",vip=\"10.0.0.1\"} 8\n"));
        assert!(text.contains("herald_l2_vip_led{node=\"n\\\"1\",vip=\"10.0.0.1\"} 1\n"));
        assert!(text.contains("# TYPE herald_l2_replies_sent_total counter"));
        let table = render_table(&s);
        assert!(table.contains("10.0.0.1") && table.contains("eth0"));
    }
}
