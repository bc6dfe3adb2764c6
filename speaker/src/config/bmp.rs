//! The `bgp.bmp:` section: BMP collectors (RFC 7854) the agent reports its peers and received
//! routes to, and the checks that name the offending key and line. Pure.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::ConfigError;

/// `bgp.bmp`: where BMP messages go.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BmpConfig {
    /// The collectors; each gets every message (filtered by its `routeMonitoring`).
    #[serde(default)]
    pub collectors: Vec<Spanned<CollectorConfig>>,
}

/// One BMP collector (`bgp.bmp.collectors[]`); the agent connects to it (RFC 7854 §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CollectorConfig {
    /// The collector's address.
    pub address: IpAddr,
    /// The collector's TCP port (BMP has no assigned port; pmacct and OpenBMP use 1790 and 5000).
    pub port: u16,
    /// A name for logs, metrics and `herald bgp bmp`; by default `address:port`.
    #[serde(default)]
    pub name: Option<String>,
    /// Seconds between Statistics Reports for each peer; 0 sends none.
    #[serde(default = "CollectorConfig::default_statistics_interval")]
    pub statistics_interval_seconds: u32,
    /// Which RIB views are streamed as Route Monitoring messages.
    #[serde(default)]
    pub route_monitoring: RouteMonitoringConfig,
    /// Bytes queued for the collector before the agent gives up on it: past this the connection
    /// is dropped (and counted) and the collector gets a full resync when it reconnects, so a
    /// slow collector never holds up BGP nor grows memory.
    #[serde(default = "CollectorConfig::default_queue_limit")]
    pub queue_limit_bytes: u64,
}

/// Least and most seconds between Statistics Reports (0 turns them off).
pub const STATISTICS_INTERVAL: std::ops::RangeInclusive<u32> = 5..=86_400;
/// Least and most `queueLimitBytes`.
pub const QUEUE_LIMIT: std::ops::RangeInclusive<u64> = (64 << 10)..=(1 << 30);

impl CollectorConfig {
    fn default_statistics_interval() -> u32 {
        60
    }
    fn default_queue_limit() -> u64 {
        32 << 20
    }

    /// The collector's socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }

    /// The configured name, or `address:port`.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.socket_addr().to_string())
    }
}

/// `routeMonitoring`: the Adj-RIB-In views sent (RFC 7854 §2 pre- and post-policy; RFC 9069
/// Loc-RIB is not implemented).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteMonitoringConfig {
    /// Routes as received, before the import policy (L flag clear).
    #[serde(default = "yes")]
    pub pre_inbound_policy: bool,
    /// Routes the import policy accepted (L flag set).
    #[serde(default = "yes")]
    pub post_inbound_policy: bool,
    /// Loc-RIB monitoring (RFC 9069): not implemented, so `true` is refused.
    #[serde(default)]
    pub local_rib: bool,
}

fn yes() -> bool {
    true
}

impl Default for RouteMonitoringConfig {
    fn default() -> Self {
        Self {
            pre_inbound_policy: true,
            post_inbound_policy: true,
            local_rib: false,
        }
    }
}

/// Checks `bgp.bmp`: usable addresses and ports, bounded intervals and queues, no collector
/// listed twice (by address and port, or by name).
pub(super) fn validate(bmp: &Spanned<BmpConfig>, origin: &str) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<SocketAddr, u64> = BTreeMap::new();
    let mut names: BTreeMap<String, u64> = BTreeMap::new();
    for (index, collector) in bmp.value.collectors.iter().enumerate() {
        let line = collector.referenced.line();
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            path: origin.to_owned(),
            line,
            key: format!("bgp.bmp.collectors[{index}].{field}"),
            message,
        };
        let c = &collector.value;
        if c.address.is_unspecified() || c.address.is_multicast() {
            return Err(invalid(
                "address",
                format!("{} is not a collector's unicast address", c.address),
            ));
        }
        if c.port == 0 {
            return Err(invalid("port", "must be 1-65535".into()));
        }
        if c.statistics_interval_seconds != 0
            && !STATISTICS_INTERVAL.contains(&c.statistics_interval_seconds)
        {
            return Err(invalid(
                "statisticsIntervalSeconds",
                format!(
                    "{} is outside {}..={} (0 sends no statistics)",
                    c.statistics_interval_seconds,
                    STATISTICS_INTERVAL.start(),
                    STATISTICS_INTERVAL.end()
                ),
            ));
        }
        if !QUEUE_LIMIT.contains(&c.queue_limit_bytes) {
            return Err(invalid(
                "queueLimitBytes",
                format!(
                    "{} is outside {}..={}",
                    c.queue_limit_bytes,
                    QUEUE_LIMIT.start(),
                    QUEUE_LIMIT.end()
                ),
            ));
        }
        if c.route_monitoring.local_rib {
            return Err(invalid(
                "routeMonitoring.localRib",
                "Loc-RIB monitoring (RFC 9069) is not implemented".into(),
            ));
        }
        if let Some(first) = seen.insert(c.socket_addr(), line) {
            return Err(invalid(
                "address",
                format!(
                    "collector {} is already listed at line {first}",
                    c.socket_addr()
                ),
            ));
        }
        if let Some(name) = &c.name {
            if name.is_empty() {
                return Err(invalid("name", "must not be empty".into()));
            }
            if let Some(first) = names.insert(name.clone(), line) {
                return Err(invalid(
                    "name",
                    format!("name {name:?} is already used at line {first}"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, parse};

    fn config(bmp: &str) -> String {
        format!("node:\n  name: n1\n  routerId: 10.0.0.1\nbgp:\n  localASN: 65000\n  bmp:\n{bmp}")
    }

    fn error(bmp: &str) -> (u64, String, String) {
        match parse(&config(bmp), "t.yaml") {
            Err(ConfigError::Invalid {
                line, key, message, ..
            }) => (line, key, message),
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    #[test]
    fn collectors_parse_with_defaults() {
        let parsed = parse(
            &config("    collectors:\n      - address: 10.0.0.9\n        port: 1790\n"),
            "t.yaml",
        )
        .expect("valid");
        let bmp = parsed.bgp.and_then(|b| b.bmp).expect("bmp section");
        let c = &bmp.value.collectors.first().expect("one collector").value;
        assert_eq!(c.display_name(), "10.0.0.9:1790");
        assert_eq!(c.statistics_interval_seconds, 60);
        assert!(c.route_monitoring.pre_inbound_policy && c.route_monitoring.post_inbound_policy);
    }

    #[test]
    fn duplicate_collector_names_the_first_line() {
        let (line, key, message) = error(
            "    collectors:\n      - address: 10.0.0.9\n        port: 1790\n      - address: 10.0.0.9\n        port: 1790\n",
        );
        assert_eq!(line, 10);
        assert_eq!(key, "bgp.bmp.collectors[1].address");
        assert!(message.contains("line 8"), "{message}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("port: 0", "port"),
            (
                "port: 1790\n        statisticsIntervalSeconds: 1",
                "statisticsIntervalSeconds",
            ),
            ("port: 1790\n        queueLimitBytes: 10", "queueLimitBytes"),
            (
                "port: 1790\n        routeMonitoring: {localRib: true}",
                "routeMonitoring.localRib",
            ),
        ];
        for (fields, field) in cases {
            let (line, key, _) = error(&format!(
                "    collectors:\n      - address: 10.0.0.9\n        {fields}\n"
            ));
            assert_eq!(line, 8, "{field}");
            assert_eq!(key, format!("bgp.bmp.collectors[0].{field}"));
        }
    }

    /// The documented complete file (docs/configuration.md), which has a `bmp` section, parses.
    #[test]
    fn documented_complete_file_parses_with_its_collector() {
        let doc = include_str!("../../../docs/configuration.md");
        let yaml = doc
            .split_once("## A complete file")
            .and_then(|(_, rest)| rest.split_once("```yaml\n"))
            .and_then(|(_, rest)| rest.split_once("```"))
            .map(|(yaml, _)| yaml)
            .expect("a yaml block after the heading");
        let config = parse(yaml, "docs/configuration.md").expect("valid");
        let bmp = config.bgp.and_then(|b| b.bmp).expect("bmp section");
        assert_eq!(
            bmp.value.collectors.first().map(|c| c.value.display_name()),
            Some("noc".to_owned())
        );
    }

    #[test]
    fn unknown_key_is_a_parse_error() {
        let result = parse(
            &config(
                "    collectors:\n      - address: 10.0.0.9\n        port: 1790\n        bogus: 1\n",
            ),
            "t.yaml",
        );
        assert!(
            matches!(&result, Err(ConfigError::Parse { message, .. }) if message.contains("bogus")),
            "{result:?}"
        );
    }
}
