//! Where the speaker's desired state comes from besides the standalone file: the Kubernetes API
//! ([`kube`], behind the default `kubernetes` feature). Each source turns its inputs into the
//! same model the standalone YAML feeds (`config::Config`, `advertise::Advertisement`,
//! `advertise::ServiceView`, lb-ipam allocations, arp-responder's `L2Config`).
//! [`external_ips`] is the allow-list every source applies to Services' `externalIPs`.

#[cfg(feature = "kubernetes")]
pub mod kube;

pub mod external_ips;
