//! Human-readable rendering of control-socket answers for `herald bgp peers`, `herald services`
//! and `herald datapath status` (`herald l2` is rendered by [`crate::l2::render_table`]). Pure.

use std::fmt::Write as _;

use crate::api::control::DatapathReport;
use crate::bgp::io::instance::PeerStatus;
use crate::ipam::ServiceStatus;
use crate::sanitize::printable;

/// A table of services: addresses, and the reason when lb-ipam could not serve one.
pub fn render_services(services: &[ServiceStatus]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32} {:<40} {:<9} REASON",
        "SERVICE", "ADDRESSES", "SATISFIED"
    );
    for s in services {
        let addresses = if s.addresses.is_empty() {
            "-".to_owned()
        } else {
            s.addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut reason = match (&s.reason, &s.message) {
            (Some(reason), Some(message)) => format!("{reason}: {message}"),
            (Some(reason), None) => reason.clone(),
            _ => String::new(),
        };
        for (addr, why) in &s.not_served {
            if !reason.is_empty() {
                reason.push_str("; ");
            }
            let _ = write!(reason, "{addr} not announced: {why}");
        }
        let _ = writeln!(
            out,
            "{:<32} {:<40} {:<9} {reason}",
            s.service,
            addresses,
            if s.satisfied { "yes" } else { "no" }
        );
    }
    out
}

/// `herald datapath status`: attachment, served and unserved addresses, then the maps.
pub fn render_datapath(report: &DatapathReport) -> String {
    let mut out = String::new();
    let s = &report.serving;
    let state = match (s.attached, &s.error) {
        (true, None) => "attached".to_owned(),
        (true, Some(e)) => format!("attached; {e}"),
        (false, Some(e)) => format!("NOT attached: {e}"),
        (false, None) => "NOT attached (starting)".to_owned(),
    };
    let _ = writeln!(out, "Datapath: {state}");
    let _ = writeln!(out, "Entries:  {}", s.entries);
    let served: Vec<String> = s.served.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "Served:   {}",
        if served.is_empty() {
            "-".to_owned()
        } else {
            served.join(", ")
        }
    );
    for (addr, why) in &s.not_served {
        let _ = writeln!(out, "Not served: {addr}: {why}");
    }
    for p in &s.problems {
        let _ = writeln!(out, "Problem:  {p}");
    }
    if let Some(text) = &report.text {
        let _ = writeln!(out);
        out.push_str(text);
    }
    out
}

fn duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// `herald bgp bmp`: one line per BMP collector.
pub fn render_bmp(collectors: &[crate::bmp::hub::CollectorStatus]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<46} {:<9} {:>8} {:>10} {:>12} {:>6} {:>10}",
        "NAME", "ADDRESS", "STATE", "CONNECTS", "MESSAGES", "BYTES", "DROPS", "QUEUED"
    );
    for c in collectors {
        let _ = writeln!(
            out,
            "{:<24} {:<46} {:<9} {:>8} {:>10} {:>12} {:>6} {:>10}",
            printable(&c.name),
            c.address,
            if c.connected { "up" } else { "down" },
            c.connects,
            c.messages,
            c.bytes,
            c.drops,
            c.queued_bytes,
        );
    }
    out
}

/// A table of peers followed by per-peer details.
pub fn render_peers(peers: &[PeerStatus]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<40} {:>10} {:<12} {:>9} {:>8} {:>8} {:>6}",
        "NAME", "ADDRESS", "ASN", "STATE", "UPTIME", "RCVD", "ACCEPTED", "SENT"
    );
    for p in peers {
        let asn = p
            .remote_asn
            .map_or_else(|| p.configured_asn.clone(), |a| a.to_string());
        let _ = writeln!(
            out,
            "{:<20} {:<40} {:>10} {:<12} {:>9} {:>8} {:>8} {:>6}",
            printable(&p.name),
            p.address,
            asn,
            if p.admin_down && p.state == "Idle" {
                "Idle(Admin)"
            } else {
                p.state.as_str()
            },
            p.uptime_seconds.map_or_else(|| "-".into(), duration),
            p.prefixes_received,
            p.prefixes_accepted,
            p.prefixes_sent,
        );
    }
    for p in peers {
        let _ = writeln!(out, "\n{} ({}):", printable(&p.name), p.address);
        if let (Some(hold), Some(keepalive)) = (p.hold_time, p.keepalive_time) {
            let _ = writeln!(out, "  timers: hold {hold}s, keepalive {keepalive}s");
        }
        if let Some(id) = &p.remote_id {
            let _ = writeln!(out, "  router id: {id}");
        }
        if !p.capabilities.is_empty() {
            let _ = writeln!(out, "  capabilities: {}", p.capabilities.join(", "));
        }
        let _ = writeln!(
            out,
            "  updates in/out: {}/{}, notifications in/out: {}/{}, stale: {}",
            p.updates_in, p.updates_out, p.notifications_in, p.notifications_out, p.prefixes_stale
        );
        if p.prefixes_unsent > 0 {
            let _ = writeln!(
                out,
                "  not sent (cannot be encoded for this session; see the log): {}",
                p.prefixes_unsent
            );
        }
        if let Some(bfd) = &p.bfd_state {
            match p.bfd_auth_failures {
                Some(n) if n > 0 => {
                    let _ = writeln!(out, "  BFD: {bfd}, {n} packets failed authentication");
                }
                _ => {
                    let _ = writeln!(out, "  BFD: {bfd}");
                }
            }
        }
        if let Some(error) = &p.last_error {
            // Escaped again here: the agent answering may be an older one.
            let _ = writeln!(out, "  last error: {}", printable(error));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer's RFC 9003 shutdown communication with a terminal escape ("\x1b[2J" clears the
    /// screen) reaches `herald bgp peers` escaped, through the FSM's description of the
    /// NOTIFICATION (what `PeerStatus.last_error` holds).
    #[test]
    fn a_shutdown_communication_with_escapes_is_rendered_harmless() {
        use bgp_proto::iana::CeaseSubcode;
        use bgp_proto::notification::Notification;

        use crate::bgp::fsm::DownReason;

        let n = Notification::shutdown(CeaseSubcode::AdministrativeShutdown, "bye\x1b[2J\r")
            .expect("notification");
        let last_error = DownReason::NotificationReceived(n).describe();
        assert!(!last_error.contains('\x1b'), "{last_error:?}");
        let peer = PeerStatus {
            name: "tor\x1b]0;pwned\x07".into(),
            address: "10.0.0.1".parse().expect("ip"),
            state: "Idle".into(),
            uptime_seconds: None,
            local_asn: 65001,
            configured_asn: "65000".into(),
            remote_asn: None,
            remote_id: None,
            hold_time: None,
            keepalive_time: None,
            capabilities: vec![],
            families: vec![],
            prefixes_received: 0,
            prefixes_accepted: 0,
            prefixes_stale: 0,
            prefixes_sent: 0,
            prefixes_unsent: 0,
            updates_in: 0,
            updates_out: 0,
            notifications_in: 1,
            notifications_out: 0,
            transitions: 1,
            admin_down: false,
            last_error: Some(last_error),
            memory_bytes: 0,
            outbound_queued_bytes: 0,
            bfd_state: None,
            bfd_auth_failures: None,
        };
        let text = render_peers(&[peer]);
        assert!(text.contains("bye\\u{1b}[2J\\u{d}"), "{text:?}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
    }

    #[test]
    fn services_table_names_the_reason() {
        let text = render_services(&[
            ServiceStatus {
                service: "default/a".into(),
                addresses: vec!["192.0.2.1".parse().expect("ip")],
                lost: vec![],
                satisfied: true,
                reason: None,
                message: None,
                not_served: Default::default(),
            },
            ServiceStatus {
                service: "default/b".into(),
                addresses: vec![],
                lost: vec![],
                satisfied: false,
                reason: Some("PoolExhausted".into()),
                message: Some("no free address".into()),
                not_served: Default::default(),
            },
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("default/a") && lines[1].contains("192.0.2.1"));
        assert!(lines[2].contains(" no ") && lines[2].ends_with("PoolExhausted: no free address"));
    }

    #[test]
    fn durations_read_like_routers_print_them() {
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(65), "1m05s");
        assert_eq!(duration(3725), "1h02m05s");
    }
}
