//! End to end (CVE-2020-8554 class): a tenant's service naming the gateway's own address
//! (10.77.0.2, the peer router) as an `externalIP` is never announced, while an external IP
//! inside `externalIPs.allowedCIDRs` is. A real `herald agent` in a namespace and a real ExaBGP
//! peer that logs every UPDATE. Needs root and ExaBGP.

mod common;

use std::time::Duration;

use common::{Speaker, Topology};
use herald_tests::{ExaBgp, wait_until_ok};

const UP: Duration = Duration::from_secs(30);
const ALLOWED: &str = "198.51.100.7/32";
const GATEWAY: &str = "10.77.0.2/32";

fn agent_yaml() -> String {
    "node: { name: node, routerId: 10.77.0.1 }\n\
     bgp:\n  localASN: 65001\n  peers:\n    - { name: exa, address: 10.77.0.2, asn: 65000, \
     timers: { holdTimeSeconds: 9, connectRetryTimeSeconds: 1 } }\n\
     \x20 advertisements:\n    - { kind: ExternalIP }\n\
     externalIPs:\n  allowedCIDRs: [198.51.100.0/24]\n\
     services:\n\
     \x20 - name: hijack\n    namespace: tenant\n    ports: [{ port: 80 }]\n\
     \x20   externalIPs: [10.77.0.2]\n\
     \x20   endpoints: [{ ip: 10.244.1.10, nodeName: node }]\n\
     \x20 - name: web\n    namespace: shop\n    ports: [{ port: 80 }]\n\
     \x20   externalIPs: [198.51.100.7]\n\
     \x20   endpoints: [{ ip: 10.244.1.11, nodeName: node }]\n\
     nodes:\n  - { name: node, address: 10.77.0.1 }\n\
     api:\n  controlSocket: {socket}\n"
        .to_owned()
}

#[test]
fn a_tenant_external_ip_outside_the_allowed_cidrs_is_never_announced() {
    let topo = Topology::new("external-ips");
    let exa =
        ExaBgp::start(&topo.peer, &topo.dir("exabgp"), &[topo.exabgp_neighbor()]).expect("exabgp");
    let speaker = Speaker::start(&topo.node, &topo.dir("node"), &agent_yaml());
    exa.wait_up(topo.node_v4, UP).expect("session up");
    wait_until_ok("the allowed external IP at ExaBGP", UP, || {
        let got = exa.received_prefixes().map_err(|e| e.to_string())?;
        got.contains(ALLOWED)
            .then_some(())
            .ok_or_else(|| format!("{got:?}"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    // Give a wrong announcement time to arrive, then look at every UPDATE ever received.
    std::thread::sleep(Duration::from_secs(3));
    let messages = exa.messages().expect("messages");
    let leaked: Vec<String> = messages
        .iter()
        .filter(|m| m.pointer("/neighbor/message/update").is_some())
        .map(ToString::to_string)
        .filter(|text| text.contains(GATEWAY))
        .collect();
    assert!(
        leaked.is_empty(),
        "the gateway address was announced: {leaked:?}"
    );
    let log = speaker.log();
    assert!(
        log.contains("tenant/hijack") && log.contains("10.77.0.2 refused"),
        "the refusal is not logged:\n{log}"
    );
    drop(speaker);
    drop(exa);
}
