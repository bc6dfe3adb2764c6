//! The advertisement model: what a node announces, to which peers and families, with which path
//! attributes. These are the serde types of the `bgp.advertisements` list of the standalone YAML
//! (the Kubernetes source maps its CRDs onto the same types). Pure data and string parsing; no I/O.
//!
//! ```yaml
//! advertisements:
//!   - name: public-lb
//!     kind: LoadBalancerIP
//!     selector:
//!       matchLabels: { io.kubernetes.service.namespace: web }
//!     peers: [tor1, 192.0.2.1]          # peer names or addresses; empty: every peer
//!     families: [ipv4-unicast]          # empty: every family the peer negotiates
//!     aggregationLengthIPv4: 28         # service kinds only; default 32 / 128
//!     attributes:
//!       communities:
//!         standard: ["65000:100"]
//!         wellKnown: [no-export]
//!         large: ["65000:1:2"]
//!         extended: ["rt:65000:7"]
//!       localPreference: 200            # sent to iBGP peers only
//!       med: 10
//!       asPathPrepend: 2                # eBGP peers only
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use bgp_proto::{Community, ExtendedCommunity, LargeCommunity};
use lb_ipam::LabelSelector;
use serde::Deserialize;

use crate::config::Family;

/// What an advertisement announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum AdvertisementKind {
    /// The node's pod CIDRs (`node.podCIDRs`), as configured; no selector, no aggregation.
    #[serde(rename = "PodCIDR")]
    PodCidr,
    /// The LoadBalancer IPs of selected services (lb-ipam allocations, else `loadBalancerIP`).
    #[serde(rename = "LoadBalancerIP")]
    LoadBalancerIp,
    /// The `externalIPs` of selected services.
    #[serde(rename = "ExternalIP")]
    ExternalIp,
    /// The cluster IPs of selected services.
    #[serde(rename = "ClusterIP")]
    ClusterIp,
}

impl AdvertisementKind {
    /// Whether the kind announces service addresses (and so takes a selector and aggregation).
    pub fn is_service(self) -> bool {
        !matches!(self, AdvertisementKind::PodCidr)
    }
}

/// One entry of `bgp.advertisements`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Advertisement {
    /// A name for logs and the CLI.
    #[serde(default)]
    pub name: Option<String>,
    /// What is announced.
    pub kind: AdvertisementKind,
    /// Which services (service kinds only). May test the pseudo-labels
    /// `io.kubernetes.service.name` and `io.kubernetes.service.namespace`. Absent: every service.
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    /// Peers (by configured name or address) that receive the routes; empty: every peer.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Families the routes are sent in; empty: every family the peer is configured for.
    /// A prefix only goes out in the family of its own address (IPv4 in `ipv4-unicast`).
    #[serde(default)]
    pub families: Vec<Family>,
    /// Prefix length service IPv4 addresses are announced with (1..=32; default 32).
    #[serde(default, rename = "aggregationLengthIPv4")]
    pub aggregation_length_ipv4: Option<u8>,
    /// Prefix length service IPv6 addresses are announced with (1..=128; default 128).
    #[serde(default, rename = "aggregationLengthIPv6")]
    pub aggregation_length_ipv6: Option<u8>,
    /// Path attributes of the announced routes.
    #[serde(default)]
    pub attributes: Attributes,
}

impl Advertisement {
    /// Checks what serde cannot: aggregation lengths in range and only on service kinds, no
    /// selector on `PodCIDR`, a well-formed selector. The message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !self.kind.is_service() {
            if self.selector.is_some() {
                return Err("selector: PodCIDR advertisements take no service selector".into());
            }
            if self.aggregation_length_ipv4.is_some() || self.aggregation_length_ipv6.is_some() {
                return Err("aggregationLength: PodCIDR advertisements are not aggregated".into());
            }
        }
        if let Some(len) = self.aggregation_length_ipv4
            && !(1..=32).contains(&len)
        {
            return Err(format!("aggregationLengthIPv4: {len} is not in 1..=32"));
        }
        if let Some(len) = self.aggregation_length_ipv6
            && !(1..=128).contains(&len)
        {
            return Err(format!("aggregationLengthIPv6: {len} is not in 1..=128"));
        }
        if let Some(selector) = &self.selector {
            selector.validate().map_err(|e| format!("selector: {e}"))?;
        }
        Ok(())
    }

    /// The prefix length a service address is announced with.
    pub fn aggregation_length(&self, addr: IpAddr) -> u8 {
        match addr {
            IpAddr::V4(_) => self.aggregation_length_ipv4.unwrap_or(32),
            IpAddr::V6(_) => self.aggregation_length_ipv6.unwrap_or(128),
        }
    }
}

/// Path attributes an advertisement asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Attributes {
    /// Communities of every kind.
    #[serde(default)]
    pub communities: Communities,
    /// LOCAL_PREF; only sent to iBGP peers (RFC 4271 §5.1.5).
    #[serde(default)]
    pub local_preference: Option<u32>,
    /// MULTI_EXIT_DISC.
    #[serde(default)]
    pub med: Option<u32>,
    /// Extra copies of the local AS in front of the AS_PATH; eBGP peers only (on iBGP the AS_PATH
    /// of a local route is empty, and our own AS in it would make the peer drop the route).
    #[serde(default)]
    pub as_path_prepend: Option<u8>,
}

/// The community lists of [`Attributes`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Communities {
    /// Standard communities (RFC 1997) as `ASN:VALUE` (each 0..=65535) or a 32-bit number.
    #[serde(default)]
    pub standard: Vec<StandardCommunity>,
    /// Well-known communities by name (`no-export`, `no-advertise`, ...).
    #[serde(default)]
    pub well_known: Vec<WellKnownCommunity>,
    /// Large communities (RFC 8092) as `GLOBAL:LOCAL1:LOCAL2`.
    #[serde(default)]
    pub large: Vec<LargeCommunityValue>,
    /// Extended communities (RFC 4360): `rt:ASN:N`, `rt:IPV4:N`, `soo:ASN:N`, `soo:IPV4:N`
    /// (a 4-octet ASN takes a 16-bit N) or 16 hex digits `0x...` for any other type.
    #[serde(default)]
    pub extended: Vec<ExtendedCommunityValue>,
}

/// A standard community parsed from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct StandardCommunity(pub Community);

impl FromStr for StandardCommunity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a standard community (ASN:VALUE, each 0..=65535)");
        if let Some((asn, value)) = s.split_once(':') {
            let asn: u16 = asn.parse().map_err(|_| bad())?;
            let value: u16 = value.parse().map_err(|_| bad())?;
            Ok(Self(Community::new(asn, value)))
        } else {
            s.parse::<u32>()
                .map(|v| Self(Community(v)))
                .map_err(|_| bad())
        }
    }
}

impl TryFrom<String> for StandardCommunity {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// A well-known community name (IANA registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WellKnownCommunity {
    /// NO_EXPORT (RFC 1997).
    NoExport,
    /// NO_ADVERTISE (RFC 1997).
    NoAdvertise,
    /// NO_EXPORT_SUBCONFED (RFC 1997).
    NoExportSubconfed,
    /// NOPEER (RFC 3765).
    NoPeer,
    /// GRACEFUL_SHUTDOWN (RFC 8326).
    GracefulShutdown,
    /// BLACKHOLE (RFC 7999).
    Blackhole,
    /// ACCEPT_OWN (RFC 7611).
    AcceptOwn,
    /// NO_LLGR (RFC 9494).
    NoLlgr,
}

impl WellKnownCommunity {
    /// The community value.
    pub fn community(self) -> Community {
        match self {
            WellKnownCommunity::NoExport => Community::NO_EXPORT,
            WellKnownCommunity::NoAdvertise => Community::NO_ADVERTISE,
            WellKnownCommunity::NoExportSubconfed => Community::NO_EXPORT_SUBCONFED,
            WellKnownCommunity::NoPeer => Community::NO_PEER,
            WellKnownCommunity::GracefulShutdown => Community::GRACEFUL_SHUTDOWN,
            WellKnownCommunity::Blackhole => Community::BLACKHOLE,
            WellKnownCommunity::AcceptOwn => Community::ACCEPT_OWN,
            WellKnownCommunity::NoLlgr => Community::NO_LLGR,
        }
    }
}

/// A large community parsed from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct LargeCommunityValue(pub LargeCommunity);

impl FromStr for LargeCommunityValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a large community (GLOBAL:LOCAL1:LOCAL2, 32-bit each)");
        let mut parts = s.split(':').map(|p| p.parse::<u32>().map_err(|_| bad()));
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(g), Some(l1), Some(l2), None) => Ok(Self(LargeCommunity {
                global: g?,
                local1: l1?,
                local2: l2?,
            })),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for LargeCommunityValue {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// An extended community parsed from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ExtendedCommunityValue(pub ExtendedCommunity);

/// RFC 4360 §4 / RFC 5668 type octets (transitive) and the sub-types we name.
const EXT_TYPE_AS2: u8 = 0x00;
const EXT_TYPE_IPV4: u8 = 0x01;
const EXT_TYPE_AS4: u8 = 0x02;
const EXT_SUB_ROUTE_TARGET: u8 = 0x02;
const EXT_SUB_ROUTE_ORIGIN: u8 = 0x03;

impl FromStr for ExtendedCommunityValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?} is not an extended community (rt:ASN:N, rt:IPV4:N, soo:ASN:N, soo:IPV4:N \
                 or 0x followed by 16 hex digits)"
            )
        };
        if let Some(hex) = s.strip_prefix("0x") {
            if hex.len() != 16 {
                return Err(bad());
            }
            let v = u64::from_str_radix(hex, 16).map_err(|_| bad())?;
            return Ok(Self(ExtendedCommunity(v.to_be_bytes())));
        }
        let (sub, rest) = match s.split_once(':') {
            Some(("rt", rest)) => (EXT_SUB_ROUTE_TARGET, rest),
            Some(("soo", rest)) => (EXT_SUB_ROUTE_ORIGIN, rest),
            _ => return Err(bad()),
        };
        let (admin, local) = rest.rsplit_once(':').ok_or_else(bad)?;
        let mut b = [0u8; 8];
        b[1] = sub;
        if let Ok(ip) = admin.parse::<Ipv4Addr>() {
            let local: u16 = local.parse().map_err(|_| bad())?;
            b[0] = EXT_TYPE_IPV4;
            b[2..6].copy_from_slice(&ip.octets());
            b[6..].copy_from_slice(&local.to_be_bytes());
        } else {
            let asn: u32 = admin.parse().map_err(|_| bad())?;
            if let Ok(asn) = u16::try_from(asn) {
                let local: u32 = local.parse().map_err(|_| bad())?;
                b[0] = EXT_TYPE_AS2;
                b[2..4].copy_from_slice(&asn.to_be_bytes());
                b[4..].copy_from_slice(&local.to_be_bytes());
            } else {
                let local: u16 = local.parse().map_err(|_| bad())?;
                b[0] = EXT_TYPE_AS4;
                b[2..6].copy_from_slice(&asn.to_be_bytes());
                b[6..].copy_from_slice(&local.to_be_bytes());
            }
        }
        Ok(Self(ExtendedCommunity(b)))
    }
}

impl TryFrom<String> for ExtendedCommunityValue {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for AdvertisementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdvertisementKind::PodCidr => "PodCIDR",
            AdvertisementKind::LoadBalancerIp => "LoadBalancerIP",
            AdvertisementKind::ExternalIp => "ExternalIP",
            AdvertisementKind::ClusterIp => "ClusterIP",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<Advertisement>, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn full_advertisement_parses_into_wire_values() {
        let ads = parse(
            r#"
- name: public
  kind: LoadBalancerIP
  selector:
    matchLabels: { io.kubernetes.service.namespace: web }
  peers: [tor1, 192.0.2.1]
  families: [ipv4-unicast, ipv6-unicast]
  aggregationLengthIPv4: 28
  aggregationLengthIPv6: 64
  attributes:
    communities:
      standard: ["65000:100", "4294901761"]
      wellKnown: [no-export, graceful-shutdown]
      large: ["4200000000:1:2"]
      extended: ["rt:65000:7", "soo:192.0.2.1:9", "rt:4200000000:5", "0x0003000000000001"]
    localPreference: 200
    med: 10
    asPathPrepend: 2
"#,
        )
        .expect("valid YAML");
        let ad = &ads[0];
        assert_eq!(ad.kind, AdvertisementKind::LoadBalancerIp);
        assert_eq!(ad.peers, vec!["tor1".to_string(), "192.0.2.1".to_string()]);
        assert_eq!(ad.families, vec![Family::Ipv4Unicast, Family::Ipv6Unicast]);
        assert_eq!(ad.aggregation_length("10.0.0.1".parse().expect("ip")), 28);
        assert_eq!(
            ad.aggregation_length("2001:db8::1".parse().expect("ip")),
            64
        );
        let c = &ad.attributes.communities;
        assert_eq!(c.standard[0].0, Community::new(65000, 100));
        assert_eq!(c.standard[1].0, Community(0xffff_0001));
        assert_eq!(c.well_known[0].community(), Community::NO_EXPORT);
        assert_eq!(c.well_known[1].community(), Community::GRACEFUL_SHUTDOWN);
        assert_eq!(
            c.large[0].0,
            LargeCommunity {
                global: 4_200_000_000,
                local1: 1,
                local2: 2
            }
        );
        assert_eq!(c.extended[0].0, ExtendedCommunity::route_target(65000, 7));
        assert_eq!(c.extended[1].0.0, [0x01, 0x03, 192, 0, 2, 1, 0, 9]);
        let as4 = 4_200_000_000u32.to_be_bytes();
        assert_eq!(
            c.extended[2].0.0,
            [0x02, 0x02, as4[0], as4[1], as4[2], as4[3], 0, 5]
        );
        assert_eq!(c.extended[3].0.0, [0, 3, 0, 0, 0, 0, 0, 1]);
        assert_eq!(ad.attributes.local_preference, Some(200));
        assert_eq!(ad.attributes.med, Some(10));
        assert_eq!(ad.attributes.as_path_prepend, Some(2));
        assert!(ad.validate().is_ok());
    }

    #[test]
    fn minimal_advertisement_defaults_to_everything() {
        let ads = parse("- kind: PodCIDR\n").expect("valid");
        let ad = &ads[0];
        assert!(ad.peers.is_empty() && ad.families.is_empty() && ad.selector.is_none());
        assert_eq!(ad.attributes, Attributes::default());
        assert_eq!(ad.aggregation_length("10.0.0.1".parse().expect("ip")), 32);
        assert_eq!(ad.aggregation_length("::1".parse().expect("ip")), 128);
        assert!(ad.validate().is_ok());
    }

    #[test]
    fn unknown_kind_and_unknown_key_are_rejected() {
        assert!(parse("- kind: NodeIP\n").is_err());
        assert!(parse("- kind: PodCIDR\n  colour: blue\n").is_err());
        assert!(parse("- kind: PodCIDR\n  attributes: { weight: 3 }\n").is_err());
    }

    #[test]
    fn malformed_communities_are_rejected_with_the_value() {
        for bad in [
            "standard: [\"65536:1\"]",
            "standard: [\"a:b\"]",
            "large: [\"1:2\"]",
            "large: [\"1:2:3:4\"]",
            "extended: [\"rt:1\"]",
            "extended: [\"xx:1:2\"]",
            "extended: [\"0x00\"]",
            "extended: [\"rt:4200000000:70000\"]",
            "wellKnown: [no-such]",
        ] {
            let yaml = format!("- kind: PodCIDR\n  attributes:\n    communities: {{ {bad} }}\n");
            assert!(parse(&yaml).is_err(), "{bad} must be rejected");
        }
        let err =
            parse("- kind: PodCIDR\n  attributes:\n    communities: { standard: [\"70000:1\"] }\n")
                .expect_err("bad");
        assert!(err.contains("70000:1"), "{err}");
    }

    #[test]
    fn validate_rejects_misplaced_and_out_of_range_fields() {
        let ads = parse(
            "- kind: PodCIDR\n  selector: {}\n\
             - kind: PodCIDR\n  aggregationLengthIPv4: 24\n\
             - kind: ClusterIP\n  aggregationLengthIPv4: 33\n\
             - kind: ClusterIP\n  aggregationLengthIPv6: 0\n\
             - kind: ClusterIP\n  selector: { matchExpressions: [{ key: a, operator: In }] }\n",
        )
        .expect("parses");
        for ad in &ads {
            assert!(ad.validate().is_err(), "{ad:?} must be invalid");
        }
    }
}
