//! The Kubernetes objects the speaker's mocked-API tests put: nodes, Secrets, Services, and the
//! small BGP cluster both test binaries start from ([`seed_two_tors`]).

use serde_json::{Value, json};

use super::{ADVERTISEMENTS, CLUSTER_CONFIGS, FakeApi, NODES, PEER_CONFIGS, SECRETS, SERVICES};

/// A node labelled `bgp: on` with one InternalIP and one pod CIDR.
pub fn node(name: &str, ip: &str, pod_cidr: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "labels": {"bgp": "on"}},
           "spec": {"podCIDRs": [pod_cidr]},
           "status": {"addresses": [{"type": "InternalIP", "address": ip}]}})
}

/// Secret `herald-system/tor-auth` holding the TCP MD5 `password`.
pub fn secret(password: &str) -> Value {
    use base64::Engine as _;
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": "tor-auth", "namespace": "herald-system"},
           "data": {"password": base64::engine::general_purpose::STANDARD.encode(password)}})
}

/// A LoadBalancer Service `shop/NAME` on port 80 whose status carries `ip` (lb-ipam's answer).
pub fn service(name: &str, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "shop"},
           "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                    "ports": [{"port": 80}]},
           "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})
}

/// BGPAdvertisement `lb` (label `adv: bgp`): pod CIDR, and LoadBalancer IPs of services without
/// the `herald.io/no-bgp` label with standard `community`.
pub fn advertisement(community: &str) -> Value {
    json!({"apiVersion": "herald.io/v1alpha1", "kind": "BGPAdvertisement",
           "metadata": {"name": "lb", "labels": {"adv": "bgp"}},
           "spec": {"advertisements": [
               {"advertisementType": "PodCIDR"},
               {"advertisementType": "Service", "service": {"addresses": ["LoadBalancerIP"]},
                "selector": {"matchExpressions": [{"key": "herald.io/no-bgp", "operator": "DoesNotExist"}]},
                "attributes": {"communities": {"standard": [community]}}}]}})
}

/// BGPPeerConfig `name`: IPv4 unicast with the `adv: bgp` advertisements, hold time
/// `hold_seconds` (keepalive a third of it, connect retry 1 s), TCP MD5 from Secret `auth`.
pub fn peer_config(name: &str, hold_seconds: u16, auth: Option<&str>) -> Value {
    let mut spec = json!({
        "timers": {"holdTimeSeconds": hold_seconds, "keepAliveTimeSeconds": hold_seconds / 3,
                   "connectRetryTimeSeconds": 1},
        "families": [{"afi": "ipv4", "safi": "unicast", "advertisements": {"matchLabels": {"adv": "bgp"}}}],
    });
    if let Some(secret) = auth {
        spec["authSecretRef"] = json!(secret);
    }
    json!({"apiVersion": "herald.io/v1alpha1", "kind": "BGPPeerConfig",
           "metadata": {"name": name}, "spec": spec})
}

/// node1 (10.0.1.2, pod CIDR 10.244.1.0/24) and node2, both selected by BGPClusterConfig `all`
/// (AS 65001): tor1 at 10.0.1.1 (peer config `plain`) and tor2 at 10.0.9.1 (`signed`, TCP MD5
/// "first-key" from Secret tor-auth), both AS 65000 with hold time 9 s; advertisement `lb` with
/// community 65000:100; Service shop/web at 10.200.0.10.
pub fn seed_two_tors(api: &FakeApi) {
    api.put(NODES, node("node1", "10.0.1.2", "10.244.1.0/24"));
    api.put(NODES, node("node2", "10.0.2.2", "10.244.2.0/24"));
    api.put(
        CLUSTER_CONFIGS,
        json!({"apiVersion": "herald.io/v1alpha1", "kind": "BGPClusterConfig",
               "metadata": {"name": "all"},
               "spec": {"nodeSelector": {"matchLabels": {"bgp": "on"}},
                        "bgpInstances": [{"name": "main", "localASN": 65001, "peers": [
                            {"name": "tor1", "peerAddress": "10.0.1.1", "peerASN": 65000, "peerConfigRef": {"name": "plain"}},
                            {"name": "tor2", "peerAddress": "10.0.9.1", "peerASN": 65000, "peerConfigRef": {"name": "signed"}}]}]}}),
    );
    api.put(PEER_CONFIGS, peer_config("plain", 9, None));
    api.put(PEER_CONFIGS, peer_config("signed", 9, Some("tor-auth")));
    api.put(SECRETS, secret("first-key"));
    api.put(ADVERTISEMENTS, advertisement("65000:100"));
    api.put(SERVICES, service("web", "10.200.0.10"));
}
