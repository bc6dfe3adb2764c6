//! Human-readable rendering of control-socket answers for `speaker peers`. Pure.

use std::fmt::Write as _;

use crate::bgp::io::instance::PeerStatus;

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
            p.name,
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
        let _ = writeln!(out, "\n{} ({}):", p.name, p.address);
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
        if let Some(bfd) = &p.bfd_state {
            let _ = writeln!(out, "  BFD: {bfd}");
        }
        if let Some(error) = &p.last_error {
            let _ = writeln!(out, "  last error: {error}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_routers_print_them() {
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(65), "1m05s");
        assert_eq!(duration(3725), "1h02m05s");
    }
}
