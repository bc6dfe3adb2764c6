//! The agent's `/metrics`, `/healthz` and `/readyz` on the shared endpoint
//! ([`lb_ipam::endpoint`], which `herald-l2` and the lb-ipam controller serve too), bound to the
//! loopback address the configuration allows. On every scrape [`AgentCollector::snapshot`] reads
//! the agent's own snapshots (peers, services, the L2 announcer, the datapath's serving view and
//! counters) and `prometheus-client` encodes them, so nothing is double-booked between the agent
//! and the exporter.
//!
//! I/O boundary: [`AgentCollector::snapshot`] (asks the agent's tasks) and [`serve_agent`] (the
//! socket); encoding a snapshot is pure.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use lb_ipam::endpoint::{
    self, EndpointConfig, Endpoints, Readiness, encode_family, encode_metric, label_value,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::api::control::Agent;
use crate::bgp::fsm::State;
use crate::bgp::io::instance::{InstanceHandle, PeerStatus};
use crate::bmp::hub::CollectorStatus;
use crate::daemon::ServingView;
use crate::error::{Error, Result};
use crate::ipam::ServiceStatus;

/// How long a scrape waits for the datapath thread's map read before leaving its counters out.
const DATAPATH_STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// One snapshot of the agent, taken at scrape time; the parts it does not run are `None`.
#[derive(Debug, Default)]
pub struct AgentCollector {
    /// BGP peers.
    pub peers: Option<Vec<PeerStatus>>,
    /// BMP collectors (with a BGP instance).
    pub bmp: Option<Vec<CollectorStatus>>,
    /// lb-ipam's (or, in Kubernetes mode, the cluster's) service allocations.
    pub services: Option<Vec<ServiceStatus>>,
    /// The L2 announcer.
    pub l2: Option<arp_responder::status::Status>,
    /// What the datapath serves.
    pub serving: Option<ServingView>,
    /// The datapath's maps (per-service and global counters), when attached and readable.
    pub datapath: Option<datapath::status::Status>,
    /// Whether lb-ipam's allocations are on disk (`None` without lb-ipam in this agent).
    pub ipam_state_saved: Option<bool>,
}

impl AgentCollector {
    /// Reads `agent`'s snapshots.
    pub async fn snapshot(agent: &Agent) -> Result<Self> {
        let (peers, bmp) = match &agent.instance {
            Some(_) => (
                Some(agent.peers().await?),
                Some(agent.bmp_collectors().await?),
            ),
            None => (None, None),
        };
        let services = if agent.ipam.is_some() || agent.cluster_services.is_some() {
            Some(agent.services()?)
        } else {
            None
        };
        let serving = agent.serving.as_ref().map(|s| s.borrow().clone());
        let datapath = match (&serving, &agent.datapath) {
            (Some(view), Some(handle)) if view.attached => {
                // Counters are a bonus: a slow or failed map read leaves them out of this scrape.
                match tokio::time::timeout(DATAPATH_STATUS_TIMEOUT, handle.status()).await {
                    Ok(Ok(status)) => Some(status),
                    _ => None,
                }
            }
            _ => None,
        };
        let ipam_state_saved = match &agent.ipam {
            Some(ipam) => Some(
                ipam.lock()
                    .map_err(|_| Error::Control("lb-ipam state poisoned".into()))?
                    .save_error()
                    .is_none(),
            ),
            None => None,
        };
        Ok(Self {
            peers,
            bmp,
            services,
            l2: agent.l2.as_ref().map(|l2| l2.status()),
            serving,
            datapath,
            ipam_state_saved,
        })
    }
}

impl Collector for AgentCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        if let Some(peers) = &self.peers {
            encode_peers(peers, &mut encoder)?;
        }
        if let Some(collectors) = &self.bmp {
            encode_bmp(collectors, &mut encoder)?;
        }
        if let Some(services) = &self.services {
            encode_services(services, &mut encoder)?;
        }
        if let Some(saved) = self.ipam_state_saved {
            encode_metric(
                &mut encoder,
                "herald_lbipam_state_saved",
                "1 when lb-ipam's allocations are saved in its state file, 0 while saving fails (served from memory; see the log).",
                gauge(u8::from(saved)),
            )?;
        }
        if let Some(l2) = &self.l2 {
            arp_responder::status::encode_metrics(l2, &mut encoder)?;
        }
        if let Some(view) = &self.serving {
            encode_serving(view, &mut encoder)?;
        }
        if let Some(status) = &self.datapath {
            encode_datapath(status, &mut encoder)?;
        }
        Ok(())
    }
}

type Labels = Vec<(&'static str, String)>;

fn peer_labels(p: &PeerStatus) -> Labels {
    vec![
        ("peer", p.address.to_string()),
        ("name", label_value(&p.name)),
    ]
}

fn gauge(v: impl TryInto<u64>) -> ConstGauge<u64> {
    ConstGauge::new(v.try_into().unwrap_or(u64::MAX))
}

fn per_peer<'a, M>(
    peers: &'a [PeerStatus],
    value: impl Fn(&PeerStatus) -> M + 'a,
) -> impl Iterator<Item = (Labels, M)> + 'a {
    peers.iter().map(move |p| (peer_labels(p), value(p)))
}

/// BMP collectors, per collector (labels `collector` (address:port) and `name`).
fn encode_bmp(collectors: &[CollectorStatus], e: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let per = |value: fn(&CollectorStatus) -> u64| {
        collectors.iter().map(move |c| {
            (
                vec![
                    ("collector", c.address.to_string()),
                    ("name", label_value(&c.name)),
                ],
                value(c),
            )
        })
    };
    encode_family(
        e,
        "herald_bmp_collector_connected",
        "1 while the BMP collector's connection is up, 0 otherwise.",
        per(|c| u64::from(c.connected)).map(|(l, v)| (l, gauge(v))),
    )?;
    encode_family(
        e,
        "herald_bmp_connections",
        "BMP connections established to the collector.",
        per(|c| c.connects).map(|(l, v)| (l, ConstCounter::new(v))),
    )?;
    encode_family(
        e,
        "herald_bmp_messages",
        "BMP messages queued for the collector.",
        per(|c| c.messages).map(|(l, v)| (l, ConstCounter::new(v))),
    )?;
    encode_family(
        e,
        "herald_bmp_sent_bytes",
        "Bytes written to the BMP collector.",
        per(|c| c.bytes).map(|(l, v)| (l, ConstCounter::new(v))),
    )?;
    encode_family(
        e,
        "herald_bmp_queue_overflow_drops",
        "Connections to the BMP collector dropped because its queue was full (it did not keep up); it is resynchronised on reconnect.",
        per(|c| c.drops).map(|(l, v)| (l, ConstCounter::new(v))),
    )?;
    encode_family(
        e,
        "herald_bmp_queued_bytes",
        "Bytes waiting in the BMP collector's queue.",
        per(|c| c.queued_bytes).map(|(l, v)| (l, gauge(v))),
    )
}

/// BGP sessions, per peer (labels `peer` and `name`).
fn encode_peers(peers: &[PeerStatus], e: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let established = |p: &PeerStatus| gauge(u8::from(p.state == State::Established.name()));
    encode_family(
        e,
        "herald_bgp_session_established",
        "1 when the BGP session is Established, 0 otherwise.",
        per_peer(peers, established),
    )?;
    encode_family(
        e,
        "herald_bgp_session_up",
        "Deprecated alias of herald_bgp_session_established.",
        per_peer(peers, established),
    )?;
    encode_family(
        e,
        "herald_bgp_session_state",
        "1 for the FSM state the session is in (RFC 4271 §8.2.2), 0 for the others.",
        peers.iter().flat_map(|p| {
            State::ALL.iter().map(move |s| {
                let mut labels = peer_labels(p);
                labels.push(("state", s.name().to_owned()));
                (labels, gauge(u8::from(p.state == s.name())))
            })
        }),
    )?;
    encode_family(
        e,
        "herald_bgp_session_uptime_seconds",
        "Seconds since the session reached Established (0 when down).",
        per_peer(peers, |p| gauge(p.uptime_seconds.unwrap_or(0))),
    )?;
    encode_family(
        e,
        "herald_bgp_session_transitions",
        "FSM state changes.",
        per_peer(peers, |p| ConstCounter::new(p.transitions)),
    )?;
    encode_family(
        e,
        "herald_bgp_updates_received",
        "UPDATE messages received.",
        per_peer(peers, |p| ConstCounter::new(p.updates_in)),
    )?;
    encode_family(
        e,
        "herald_bgp_updates_sent",
        "UPDATE messages sent.",
        per_peer(peers, |p| ConstCounter::new(p.updates_out)),
    )?;
    encode_family(
        e,
        "herald_bgp_notifications",
        "NOTIFICATION messages by direction.",
        peers.iter().flat_map(|p| {
            [
                ("received", p.notifications_in),
                ("sent", p.notifications_out),
            ]
            .map(|(direction, n)| {
                let mut labels = peer_labels(p);
                labels.push(("direction", direction.to_owned()));
                (labels, ConstCounter::new(n))
            })
        }),
    )?;
    encode_family(
        e,
        "herald_bgp_prefixes_received",
        "Routes received from the peer (Adj-RIB-In, before import policy).",
        per_peer(peers, |p| gauge(p.prefixes_received)),
    )?;
    encode_family(
        e,
        "herald_bgp_prefixes_accepted",
        "Routes from the peer accepted by the import policy.",
        per_peer(peers, |p| gauge(p.prefixes_accepted)),
    )?;
    encode_family(
        e,
        "herald_bgp_prefixes_stale",
        "Routes from the peer kept as stale during its graceful restart.",
        per_peer(peers, |p| gauge(p.prefixes_stale)),
    )?;
    encode_family(
        e,
        "herald_bgp_prefixes_advertised",
        "Routes advertised to the peer (Adj-RIB-Out).",
        per_peer(peers, |p| gauge(p.prefixes_sent)),
    )?;
    encode_family(
        e,
        "herald_bgp_prefixes_unsent",
        "Routes of the Adj-RIB-Out not sent to the peer because they cannot be encoded for its session.",
        per_peer(peers, |p| gauge(p.prefixes_unsent)),
    )?;
    encode_family(
        e,
        "herald_bgp_bfd_up",
        "1 when the BFD session bound to the peer is Up, 0 otherwise (absent without BFD).",
        peers.iter().filter_map(|p| {
            let state = p.bfd_state.as_deref()?;
            Some((peer_labels(p), gauge(u8::from(state == "Up"))))
        }),
    )?;
    encode_family(
        e,
        "herald_bgp_bfd_auth_failures",
        "BFD packets from the peer discarded by authentication (missing, wrong key or type, \
         replayed sequence number, bad digest); absent without BFD.",
        peers.iter().filter_map(|p| {
            let failures = p.bfd_auth_failures?;
            Some((peer_labels(p), ConstCounter::new(failures)))
        }),
    )
}

/// lb-ipam's allocations, per service (label `service`, `namespace/name`).
fn encode_services(services: &[ServiceStatus], e: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let by_service = |s: &ServiceStatus| vec![("service", label_value(&s.service))];
    encode_family(
        e,
        "herald_lbipam_service_addresses",
        "Addresses lb-ipam allocated to the service.",
        services
            .iter()
            .map(|s| (by_service(s), gauge(s.addresses.len()))),
    )?;
    encode_family(
        e,
        "herald_lbipam_service_satisfied",
        "1 when lb-ipam fully served the service's request, 0 otherwise.",
        services
            .iter()
            .map(|s| (by_service(s), gauge(u8::from(s.satisfied)))),
    )?;
    encode_family(
        e,
        "herald_lbipam_service_addresses_lost",
        "Addresses the service held that no pool covers any more.",
        services
            .iter()
            .map(|s| (by_service(s), gauge(s.lost.len()))),
    )
}

/// The datapath's attachment and what it serves (no labels).
fn encode_serving(view: &ServingView, e: &mut DescriptorEncoder<'_>) -> fmt::Result {
    encode_metric(
        e,
        "herald_datapath_attached",
        "Whether this node's XDP/TC programs are attached.",
        gauge(u8::from(view.attached)),
    )?;
    encode_metric(
        e,
        "herald_datapath_entries",
        "Service entries (address:port/protocol) in the desired table.",
        gauge(view.entries),
    )?;
    encode_metric(
        e,
        "herald_datapath_backends",
        "Backends over all service entries of the desired table.",
        gauge(view.backends),
    )?;
    encode_metric(
        e,
        "herald_datapath_apply_seconds",
        "Wall time of the last apply of a new service table: Maglev rebuilds and map writes.",
        ConstGauge::new(view.last_apply_micros as f64 / 1e6),
    )?;
    encode_metric(
        e,
        "herald_datapath_served_addresses",
        "Service addresses this node serves and announces.",
        gauge(view.served.len()),
    )?;
    encode_metric(
        e,
        "herald_datapath_unserved_addresses",
        "Service addresses not served here, so not announced.",
        gauge(view.not_served.len()),
    )
}

fn service_address(addr: &[u8; 16], family: u8) -> IpAddr {
    if family == datapath_common::FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*addr))
    }
}

fn protocol(number: u8) -> String {
    match number {
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        132 => "sctp".to_owned(),
        n => n.to_string(),
    }
}

/// The datapath's counters read from its maps: per service (labels `vip`, `port`, `protocol`)
/// and per packet outcome.
fn encode_datapath(
    status: &datapath::status::Status,
    e: &mut DescriptorEncoder<'_>,
) -> fmt::Result {
    let by_service = |k: &datapath_common::ServiceKey| {
        vec![
            ("vip", service_address(&k.addr, k.family).to_string()),
            ("port", k.port.to_string()),
            ("protocol", protocol(k.proto)),
        ]
    };
    encode_family(
        e,
        "herald_datapath_service_packets",
        "Packets the datapath load-balanced for the service.",
        status
            .services
            .iter()
            .map(|(k, _, c)| (by_service(k), ConstCounter::new(c.packets))),
    )?;
    encode_family(
        e,
        "herald_datapath_service_bytes",
        "Bytes the datapath load-balanced for the service (before encapsulation).",
        status
            .services
            .iter()
            .map(|(k, _, c)| (by_service(k), ConstCounter::new(c.bytes))),
    )?;
    encode_family(
        e,
        "herald_datapath_packets",
        "Packets the datapath's programs handled, by outcome.",
        status.counters.iter().map(|(c, n)| {
            (
                vec![("outcome", c.name().to_owned())],
                ConstCounter::new(*n),
            )
        }),
    )
}

/// `/metrics` for `agent`: a fresh snapshot encoded in the OpenMetrics text format.
pub async fn render_agent(agent: &Agent) -> Result<String> {
    let collector = AgentCollector::snapshot(agent).await?;
    endpoint::render(collector).map_err(|_| Error::Control("encoding the metrics failed".into()))
}

impl Endpoints for Agent {
    fn readiness(&self) -> Readiness {
        let readiness = self.health.readiness();
        // Serving from memory with an unsaved lb-ipam state is degraded, not unready.
        let unsaved = self
            .ipam
            .as_ref()
            .and_then(|ipam| ipam.lock().ok()?.save_error().map(str::to_owned));
        Readiness {
            ready: readiness.ready,
            reason: match unsaved {
                Some(error) => format!(
                    "{}; degraded: lb-ipam state not saved: {error}",
                    readiness.reason
                ),
                None => readiness.reason,
            },
        }
    }

    async fn metrics(&self) -> Option<std::result::Result<String, String>> {
        Some(render_agent(self).await.map_err(|e| e.to_string()))
    }
}

/// Serves `/metrics` for a lone BGP instance on `address` until the task is dropped.
pub async fn serve(address: SocketAddr, instance: InstanceHandle) -> Result<()> {
    serve_agent(
        address,
        Agent::bgp_only(instance, std::path::PathBuf::new()),
    )
    .await
}

/// Serves `/metrics`, `/healthz` and `/readyz` for `agent` on `address` until the task is
/// dropped.
pub async fn serve_agent(address: SocketAddr, agent: Agent) -> Result<()> {
    let listener = endpoint::bind(address)
        .await
        .map_err(|e| Error::io(format!("bind metrics {address}"), e))?;
    endpoint::serve(listener, Arc::new(agent), EndpointConfig::default())
        .await
        .map_err(|e| Error::io("metrics endpoint", e))
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
            prefixes_unsent: 0,
            updates_in: 7,
            updates_out: 3,
            notifications_in: 0,
            notifications_out: 1,
            transitions: 5,
            admin_down: false,
            last_error: None,
            bfd_state: Some("Up".into()),
            bfd_auth_failures: Some(12),
            memory_bytes: 0,
            outbound_queued_bytes: 0,
        }
    }

    /// The rendered text's sample lines as `(name{labels}, value)`, checking every line is a
    /// sample, a `# HELP`/`# TYPE` line or the final `# EOF`.
    fn samples(text: &str) -> Vec<(String, String)> {
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"# EOF"), "{text}");
        lines[..lines.len() - 1]
            .iter()
            .filter(|l| {
                assert!(
                    !l.starts_with('#') || l.starts_with("# HELP ") || l.starts_with("# TYPE "),
                    "{l}"
                );
                !l.starts_with('#')
            })
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("sample has a value");
                (series.to_owned(), value.to_owned())
            })
            .collect()
    }

    fn value(samples: &[(String, String)], series: &str) -> Option<String> {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| v.clone())
    }

    fn render(collector: AgentCollector) -> String {
        endpoint::render(collector).expect("render")
    }

    #[test]
    fn peers_expose_session_state_routes_and_counters_with_escaped_labels() {
        let text = render(AgentCollector {
            peers: Some(vec![peer("Established")]),
            ..Default::default()
        });
        let s = samples(&text);
        let p = r#"peer="10.0.0.1",name="tor \"a\"""#;
        for (series, want) in [
            (format!("herald_bgp_session_established{{{p}}}"), "1"),
            (format!("herald_bgp_session_up{{{p}}}"), "1"),
            (
                format!("herald_bgp_session_state{{{p},state=\"Established\"}}"),
                "1",
            ),
            (
                format!("herald_bgp_session_state{{{p},state=\"Idle\"}}"),
                "0",
            ),
            (format!("herald_bgp_prefixes_received{{{p}}}"), "4"),
            (format!("herald_bgp_prefixes_accepted{{{p}}}"), "0"),
            (format!("herald_bgp_prefixes_advertised{{{p}}}"), "2"),
            (format!("herald_bgp_updates_received_total{{{p}}}"), "7"),
            (
                format!("herald_bgp_notifications_total{{{p},direction=\"sent\"}}"),
                "1",
            ),
            (format!("herald_bgp_bfd_up{{{p}}}"), "1"),
            (format!("herald_bgp_bfd_auth_failures_total{{{p}}}"), "12"),
        ] {
            assert_eq!(
                value(&s, &series).as_deref(),
                Some(want),
                "{series}\n{text}"
            );
        }
        let states = s
            .iter()
            .filter(|(series, _)| series.starts_with("herald_bgp_session_state{"))
            .count();
        assert_eq!(states, State::ALL.len());
        assert!(text.contains("# TYPE herald_bgp_updates_received counter\n"));
    }

    #[test]
    fn bmp_collectors_expose_connection_and_drop_counters() {
        let text = render(AgentCollector {
            bmp: Some(vec![CollectorStatus {
                name: "pmbmpd".into(),
                address: "10.0.0.9:1790".parse().expect("address"),
                connected: true,
                connects: 2,
                messages: 40,
                bytes: 4000,
                drops: 1,
                queued_bytes: 0,
            }]),
            ..Default::default()
        });
        let s = samples(&text);
        let c = r#"collector="10.0.0.9:1790",name="pmbmpd""#;
        for (series, want) in [
            (format!("herald_bmp_collector_connected{{{c}}}"), "1"),
            (format!("herald_bmp_connections_total{{{c}}}"), "2"),
            (format!("herald_bmp_messages_total{{{c}}}"), "40"),
            (format!("herald_bmp_queue_overflow_drops_total{{{c}}}"), "1"),
        ] {
            assert_eq!(
                value(&s, &series).as_deref(),
                Some(want),
                "{series}\n{text}"
            );
        }
    }

    #[test]
    fn a_down_peer_without_bfd_is_zero_and_has_no_bfd_sample() {
        let mut down = peer("Active");
        down.bfd_state = None;
        down.bfd_auth_failures = None;
        let s = samples(&render(AgentCollector {
            peers: Some(vec![down]),
            ..Default::default()
        }));
        let p = r#"peer="10.0.0.1",name="tor \"a\"""#;
        assert_eq!(
            value(&s, &format!("herald_bgp_session_established{{{p}}}")).as_deref(),
            Some("0")
        );
        assert!(
            !s.iter()
                .any(|(series, _)| series.starts_with("herald_bgp_bfd_"))
        );
    }

    #[test]
    fn services_expose_address_counts_and_satisfaction() {
        let s = samples(&render(AgentCollector {
            services: Some(vec![ServiceStatus {
                service: "shop/\"web\"".into(),
                addresses: vec!["192.0.2.1".parse().expect("ip")],
                lost: vec![],
                satisfied: false,
                reason: Some("PoolExhausted".into()),
                message: None,
                not_served: Default::default(),
            }]),
            ..Default::default()
        }));
        let svc = r#"service="shop/\"web\"""#;
        assert_eq!(
            value(&s, &format!("herald_lbipam_service_addresses{{{svc}}}")).as_deref(),
            Some("1")
        );
        assert_eq!(
            value(&s, &format!("herald_lbipam_service_satisfied{{{svc}}}")).as_deref(),
            Some("0")
        );
    }

    #[test]
    fn serving_view_renders_unlabelled_gauges() {
        let view = ServingView {
            enabled: true,
            attached: false,
            entries: 2,
            backends: 5,
            last_apply_micros: 1500,
            not_served: [("10.200.0.10".parse().expect("ip"), "no eth9".to_owned())].into(),
            ..Default::default()
        };
        let text = render(AgentCollector {
            serving: Some(view),
            ..Default::default()
        });
        // speaker/tests/serving.rs looks for these exact lines.
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"herald_datapath_attached 0"), "{text}");
        assert!(
            lines.contains(&"herald_datapath_unserved_addresses 1"),
            "{text}"
        );
        assert!(
            lines.contains(&"herald_datapath_served_addresses 0"),
            "{text}"
        );
        assert!(lines.contains(&"herald_datapath_entries 2"), "{text}");
        assert!(lines.contains(&"herald_datapath_backends 5"), "{text}");
        assert!(
            lines.contains(&"herald_datapath_apply_seconds 0.0015"),
            "{text}"
        );
    }

    #[test]
    fn datapath_counters_are_per_service_and_per_outcome() {
        let key = datapath_common::ServiceKey {
            addr: [192, 0, 2, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            port: 443,
            proto: 6,
            family: datapath_common::FAMILY_V4,
        };
        let status = datapath::status::Status {
            services: vec![(
                key,
                datapath_common::ServiceValue::default(),
                datapath_common::ServiceCounters {
                    packets: 10,
                    bytes: 1500,
                },
            )],
            backends: vec![],
            counters: vec![(datapath_common::Counter::Encap, 9)],
            ..Default::default()
        };
        let s = samples(&render(AgentCollector {
            datapath: Some(status),
            ..Default::default()
        }));
        let svc = r#"vip="192.0.2.10",port="443",protocol="tcp""#;
        assert_eq!(
            value(
                &s,
                &format!("herald_datapath_service_packets_total{{{svc}}}")
            )
            .as_deref(),
            Some("10")
        );
        assert_eq!(
            value(&s, &format!("herald_datapath_service_bytes_total{{{svc}}}")).as_deref(),
            Some("1500")
        );
        let encap = format!(
            "herald_datapath_packets_total{{outcome=\"{}\"}}",
            datapath_common::Counter::Encap.name()
        );
        assert_eq!(value(&s, &encap).as_deref(), Some("9"));
    }

    #[test]
    fn l2_status_is_encoded_by_the_shared_collector() {
        let s = samples(&render(AgentCollector {
            l2: Some(arp_responder::status::Status {
                node: "n1".into(),
                quorum: true,
                ..Default::default()
            }),
            ..Default::default()
        }));
        assert_eq!(
            value(&s, "herald_l2_quorum{node=\"n1\"}").as_deref(),
            Some("1")
        );
    }
}
