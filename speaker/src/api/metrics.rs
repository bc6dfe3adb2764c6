//! Prometheus `/metrics` in the text exposition format (version 0.0.4), and the `/healthz` and
//! `/readyz` probes, served over plain HTTP on a loopback address. The values are rendered from peer snapshots (and the L2 announcer's and
//! lb-ipam's state) on every scrape, so nothing is double-booked between them and the exporter.
//!
//! I/O boundary: the TCP listener in [`serve`]; [`render`] is pure.

use std::fmt::Write as _;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::api::control::Agent;
use crate::bgp::fsm::State;
use crate::bgp::io::instance::{InstanceHandle, PeerStatus};
use crate::error::{Error, Result};
use crate::ipam::ServiceStatus;

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the peer snapshots as Prometheus text.
pub fn render(peers: &[PeerStatus]) -> String {
    let mut out = String::new();
    let mut family =
        |name: &str, kind: &str, help: &str, value: &dyn Fn(&PeerStatus) -> Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for peer in peers {
                for (extra, v) in value(peer) {
                    let _ = writeln!(
                        out,
                        "{name}{{peer=\"{}\",name=\"{}\"{extra}}} {v}",
                        peer.address,
                        escape(&peer.name)
                    );
                }
            }
        };
    family(
        "herald_bgp_session_state",
        "gauge",
        "1 for the FSM state the session is in (RFC 4271 §8.2.2), 0 for the others.",
        &|p| {
            State::ALL
                .iter()
                .map(|s| {
                    (
                        format!(",state=\"{}\"", s.name()),
                        if p.state == s.name() { 1.0 } else { 0.0 },
                    )
                })
                .collect()
        },
    );
    family(
        "herald_bgp_session_up",
        "gauge",
        "1 when the session is Established.",
        &|p| {
            vec![(
                String::new(),
                if p.state == "Established" { 1.0 } else { 0.0 },
            )]
        },
    );
    family(
        "herald_bgp_session_uptime_seconds",
        "gauge",
        "Seconds since the session reached Established (0 when down).",
        &|p| vec![(String::new(), p.uptime_seconds.unwrap_or(0) as f64)],
    );
    family(
        "herald_bgp_session_transitions_total",
        "counter",
        "FSM state changes.",
        &|p| vec![(String::new(), p.transitions as f64)],
    );
    family(
        "herald_bgp_updates_received_total",
        "counter",
        "UPDATE messages received.",
        &|p| vec![(String::new(), p.updates_in as f64)],
    );
    family(
        "herald_bgp_updates_sent_total",
        "counter",
        "UPDATE messages sent.",
        &|p| vec![(String::new(), p.updates_out as f64)],
    );
    family(
        "herald_bgp_notifications_total",
        "counter",
        "NOTIFICATION messages by direction.",
        &|p| {
            vec![
                (",direction=\"received\"".into(), p.notifications_in as f64),
                (",direction=\"sent\"".into(), p.notifications_out as f64),
            ]
        },
    );
    family(
        "herald_bgp_prefixes_received",
        "gauge",
        "Prefixes in the Adj-RIB-In (before import policy).",
        &|p| vec![(String::new(), p.prefixes_received as f64)],
    );
    family(
        "herald_bgp_prefixes_accepted",
        "gauge",
        "Prefixes accepted by the import policy.",
        &|p| vec![(String::new(), p.prefixes_accepted as f64)],
    );
    family(
        "herald_bgp_prefixes_advertised",
        "gauge",
        "Prefixes in the Adj-RIB-Out.",
        &|p| vec![(String::new(), p.prefixes_sent as f64)],
    );
    family(
        "herald_bgp_bfd_up",
        "gauge",
        "1 when the BFD session bound to the peer is Up, 0 otherwise (absent without BFD).",
        &|p| match &p.bfd_state {
            Some(state) => vec![(String::new(), if state == "Up" { 1.0 } else { 0.0 })],
            None => Vec::new(),
        },
    );
    out
}

/// Renders lb-ipam's per-service outcome as Prometheus text.
pub fn render_services(services: &[ServiceStatus]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP herald_service_addresses Addresses lb-ipam gave the service."
    );
    let _ = writeln!(out, "# TYPE herald_service_addresses gauge");
    for s in services {
        let _ = writeln!(
            out,
            "herald_service_addresses{{service=\"{}\"}} {}",
            escape(&s.service),
            s.addresses.len()
        );
    }
    let _ = writeln!(
        out,
        "# HELP herald_service_satisfied 1 when lb-ipam fully served the service's request."
    );
    let _ = writeln!(out, "# TYPE herald_service_satisfied gauge");
    for s in services {
        let _ = writeln!(
            out,
            "herald_service_satisfied{{service=\"{}\"}} {}",
            escape(&s.service),
            u8::from(s.satisfied)
        );
    }
    out
}

/// Everything `agent` exposes: BGP peers, lb-ipam services and the L2 announcer.
pub async fn render_agent(agent: &Agent) -> Result<String> {
    let mut out = String::new();
    if agent.instance.is_some() {
        out.push_str(&render(&agent.peers().await?));
    }
    if agent.ipam.is_some() {
        out.push_str(&render_services(&agent.services()?));
    }
    if let Some(l2) = &agent.l2 {
        out.push_str(&arp_responder::status::render_prometheus(&l2.status()));
    }
    if let Some(serving) = &agent.serving {
        out.push_str(&render_serving(&serving.borrow()));
    }
    Ok(out)
}

/// The datapath's attachment and what it serves, as Prometheus text.
pub fn render_serving(view: &crate::daemon::ServingView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP herald_datapath_attached Whether this node's XDP/TC programs are attached.\n\
         # TYPE herald_datapath_attached gauge\nherald_datapath_attached {}",
        u8::from(view.attached)
    );
    let _ = writeln!(
        out,
        "# HELP herald_datapath_entries Service entries (address:port/protocol) in the desired table.\n\
         # TYPE herald_datapath_entries gauge\nherald_datapath_entries {}",
        view.entries
    );
    let _ = writeln!(
        out,
        "# HELP herald_datapath_served_addresses Service addresses this node serves and announces.\n\
         # TYPE herald_datapath_served_addresses gauge\nherald_datapath_served_addresses {}",
        view.served.len()
    );
    let _ = writeln!(
        out,
        "# HELP herald_datapath_unserved_addresses Service addresses not served here, so not announced.\n\
         # TYPE herald_datapath_unserved_addresses gauge\nherald_datapath_unserved_addresses {}",
        view.not_served.len()
    );
    out
}

/// Serves `/metrics` on `address` until the task is dropped.
pub async fn serve(address: SocketAddr, instance: InstanceHandle) -> Result<()> {
    serve_agent(
        address,
        Agent::bgp_only(instance, std::path::PathBuf::new()),
    )
    .await
}

/// Serves `/metrics` for `agent` on `address` until the task is dropped.
pub async fn serve_agent(address: SocketAddr, agent: Agent) -> Result<()> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| Error::io(format!("bind metrics {address}"), e))?;
    loop {
        let (mut stream, _) = listener
            .accept()
            .await
            .map_err(|e| Error::io("accept metrics", e))?;
        let agent = agent.clone();
        tokio::spawn(async move {
            let mut request = [0u8; 2048];
            let n = match stream.read(&mut request).await {
                Ok(n) => n,
                Err(_) => return,
            };
            let head = String::from_utf8_lossy(&request[..n]);
            let path_ok = head.starts_with("GET /metrics ") || head.starts_with("GET / ");
            let (status, body) = if head.starts_with("GET /healthz ") {
                // Answering at all is the liveness proof: the agent's runtime is running.
                ("200 OK", "ok\n".to_owned())
            } else if head.starts_with("GET /readyz ") {
                let readiness = agent.health.readiness();
                let status = if readiness.ready {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                (status, format!("{}\n", readiness.reason))
            } else if !path_ok {
                ("404 Not Found", "not found\n".to_owned())
            } else {
                match render_agent(&agent).await {
                    Ok(text) => ("200 OK", text),
                    Err(e) => ("503 Service Unavailable", format!("{e}\n")),
                }
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(state: &str) -> PeerStatus {
        PeerStatus {
            name: "tor \"a\"".into(),
            address: "10.0.0.1".parse().expect("ip"),
            state: state.into(),
            uptime_seconds: Some(12),
            local_asn: 65001,
            configured_asn: "65000".into(),
            remote_asn: Some(65000),
            remote_id: None,
            hold_time: Some(9),
            keepalive_time: Some(3),
            capabilities: vec![],
            families: vec![],
            prefixes_received: 4,
            prefixes_accepted: 0,
            prefixes_stale: 0,
            prefixes_sent: 2,
            updates_in: 7,
            updates_out: 3,
            notifications_in: 0,
            notifications_out: 1,
            transitions: 5,
            admin_down: false,
            last_error: None,
            bfd_state: Some("Up".into()),
        }
    }

    #[test]
    fn services_render_address_counts_and_satisfaction() {
        let text = render_services(&[ServiceStatus {
            service: "shop/\"web\"".into(),
            addresses: vec!["192.0.2.1".parse().expect("ip")],
            lost: vec![],
            satisfied: false,
            reason: Some("PoolExhausted".into()),
            message: None,
            not_served: Default::default(),
        }]);
        assert!(
            text.contains("herald_service_addresses{service=\"shop/\\\"web\\\"\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("herald_service_satisfied{service=\"shop/\\\"web\\\"\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn render_exposes_state_counters_and_escapes_labels() {
        let text = render(&[peer("Established")]);
        assert!(text.contains("herald_bgp_session_state{peer=\"10.0.0.1\",name=\"tor \\\"a\\\"\",state=\"Established\"} 1"), "{text}");
        assert!(text.contains("state=\"Idle\"} 0"));
        assert!(text.contains("herald_bgp_session_up{peer=\"10.0.0.1\",name=\"tor \\\"a\\\"\"} 1"));
        assert!(text.contains(
            "herald_bgp_prefixes_advertised{peer=\"10.0.0.1\",name=\"tor \\\"a\\\"\"} 2"
        ));
        assert!(text.contains("direction=\"sent\"} 1"));
        assert!(text.contains("# TYPE herald_bgp_updates_received_total counter"));
        assert!(
            text.contains("herald_bgp_bfd_up{peer=\"10.0.0.1\",name=\"tor \\\"a\\\"\"} 1"),
            "{text}"
        );
    }
}
