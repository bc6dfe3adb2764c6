//! End to end, issue 14 item 6 ("partial failures") with a real `herald agent` in network
//! namespaces: a route that cannot be encoded for a real peer (ExaBGP) skips only itself, and a
//! reload with one unreadable password file changes nothing at all (lb-ipam, its state file, the
//! BGP peers). Each test builds its own namespaces and tears them down on drop. Needs root and
//! ExaBGP from `scripts/setup.sh`.

mod common;

use std::time::Duration;

use common::{Speaker, Topology};
use herald_tests::{ExaBgp, wait_until_ok};
use speaker::api::control::{Request, Response, request};

const UP: Duration = Duration::from_secs(45);
const TIMERS: &str = "timers: { holdTimeSeconds: 9, connectRetryTimeSeconds: 1 }";

/// 1100 standard communities: 4400 octets of COMMUNITIES, more than a 4096-octet UPDATE holds
/// (the speaker does not negotiate RFC 8654 extended messages).
fn too_many_communities() -> String {
    let list: Vec<String> = (0..1100).map(|i| format!("\"65000:{i}\"")).collect();
    format!("[{}]", list.join(", "))
}

fn control(socket: &std::path::Path, req: &Request) -> Response {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(request(socket, req))
        .expect("control request")
}

#[test]
fn a_route_too_large_for_the_peer_skips_only_itself() {
    let t = Topology::new("partial_unencodable");
    let exabgp = ExaBgp::start(&t.peer, &t.dir("exabgp"), &[t.exabgp_neighbor()]).expect("exabgp");
    let yaml = |first: bool| {
        let first = if first {
            "    - prefix: 192.0.2.0/24\n"
        } else {
            ""
        };
        format!(
            "node: {{ name: node, routerId: {node} }}\n\
             bgp:\n  localASN: 65001\n  peers:\n    - {{ address: {peer}, asn: 65000, passive: true, {TIMERS} }}\n\
             \x20 staticRoutes:\n{first}\
             \x20   - {{ prefix: 198.51.100.0/24, communities: {big} }}\n\
             \x20   - prefix: 203.0.113.0/24\n\
             api:\n  controlSocket: {{socket}}\n",
            node = t.node_v4,
            peer = t.peer_v4,
            big = too_many_communities(),
        )
    };
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml(true));
    exabgp.wait_up(t.node_v4, UP).expect("ExaBGP up");
    let received = |want: &[&str]| {
        wait_until_ok(&format!("{want:?} at ExaBGP"), UP, || {
            let p = exabgp.received_prefixes().map_err(|e| e.to_string())?;
            (p.iter().map(String::as_str).collect::<Vec<_>>() == want)
                .then_some(())
                .ok_or(format!("{p:?}"))
        })
        .unwrap_or_else(|e| panic!("{e}\nspeaker log:\n{}", speaker.log()));
    };
    // The other routes of the same initial advertisement reach the peer.
    received(&["192.0.2.0/24", "203.0.113.0/24"]);
    let advertised = |want: &[&str]| {
        let rows = speaker.routes(false).expect("routes");
        let got: Vec<String> = rows.iter().map(|r| r.prefix.to_string()).collect();
        assert_eq!(
            got, want,
            "the Adj-RIB-Out view must show what the peer holds"
        );
    };
    advertised(&["192.0.2.0/24", "203.0.113.0/24"]);
    let peer = speaker.peer(t.peer_v4);
    assert_eq!(peer.state, "Established");
    assert_eq!((peer.prefixes_sent, peer.prefixes_unsent), (2, 1));
    wait_until_ok(
        "the skipped route in the log",
        Duration::from_secs(5),
        || {
            let log = speaker.log();
            (log.contains("route not advertised") && log.contains("198.51.100.0/24"))
                .then_some(())
                .ok_or(log)
        },
    )
    .expect("logged");

    // A later batch with a withdrawal still goes out while the large route stays unsent.
    speaker.reconfigure(&yaml(false));
    received(&["203.0.113.0/24"]);
    advertised(&["203.0.113.0/24"]);
    let peer = speaker.peer(t.peer_v4);
    assert_eq!((peer.prefixes_sent, peer.prefixes_unsent), (1, 1));
}

#[test]
fn a_reload_with_one_unreadable_password_file_changes_nothing() {
    let t = Topology::new("partial_reload");
    let dir = t.dir("speaker");
    let state = dir.join("ipam.json");
    let key = dir.join("peer3.key");
    let yaml = |second: bool| {
        let (service, peer) = if second {
            (
                "  - { name: added }\n".to_owned(),
                format!(
                    "    - {{ address: 10.77.0.3, asn: 65003, passive: true, passwordFile: {} }}\n",
                    key.display()
                ),
            )
        } else {
            (String::new(), String::new())
        };
        format!(
            "node: {{ name: node, routerId: {node} }}\n\
             bgp:\n  localASN: 65001\n  peers:\n    - {{ address: {peer_v4}, asn: 65000, passive: true, {TIMERS} }}\n{peer}\
             ipam:\n  stateFile: {state}\n  pools:\n    - {{ name: vip, blocks: [{{ cidr: 10.200.0.0/29 }}] }}\n\
             services:\n  - {{ name: web }}\n{service}\
             api:\n  controlSocket: {{socket}}\n",
            node = t.node_v4,
            peer_v4 = t.peer_v4,
            state = state.display(),
        )
    };
    let speaker = Speaker::start(&t.node, &dir, &yaml(false));
    let services = |socket: &std::path::Path| match control(socket, &Request::Services) {
        Response::Services { services } => services
            .into_iter()
            .map(|s| (s.service, s.addresses))
            .collect::<Vec<_>>(),
        other => panic!("unexpected {other:?}"),
    };
    let peers = || -> Vec<String> {
        let mut p: Vec<String> = speaker
            .peers()
            .expect("peers")
            .into_iter()
            .map(|p| p.address.to_string())
            .collect();
        p.sort();
        p
    };
    let services_before = services(&speaker.socket);
    assert_eq!(services_before.len(), 1, "{services_before:?}");
    let state_before = std::fs::read(&state).expect("state file");
    assert_eq!(peers(), vec![t.peer_v4.to_owned()]);

    // One good change (a service) plus a peer whose password file does not exist.
    std::fs::write(
        &speaker.config,
        yaml(true).replace("{socket}", &speaker.socket.to_string_lossy()),
    )
    .expect("write config");
    // The agent notices the edit itself (it polls the file every 2 s): that reload must fail
    // and change nothing too, and it must be over before the key file appears below.
    wait_until_ok("the file-change reload", Duration::from_secs(10), || {
        let log = speaker.log();
        log.contains("configuration not reloaded")
            .then_some(())
            .ok_or(log)
    })
    .expect("a failed reload in the log");
    let message = match control(&speaker.socket, &Request::Reload) {
        Response::Error { message } => message,
        other => panic!("the reload must fail, got {other:?}"),
    };
    assert!(
        message.contains("bgp.peers[1].passwordFile") && message.contains("peer3.key"),
        "the error must name the key and the file: {message}"
    );
    assert!(
        message.contains("speaker.yaml:"),
        "and the file and line: {message}"
    );
    assert_eq!(
        services(&speaker.socket),
        services_before,
        "lb-ipam changed"
    );
    assert_eq!(
        std::fs::read(&state).expect("state file"),
        state_before,
        "lb-ipam's state file changed"
    );
    assert_eq!(peers(), vec![t.peer_v4.to_owned()], "the BGP peers changed");

    // With the file in place the same configuration applies whole.
    std::fs::write(&key, "s3cret\n").expect("key");
    match control(&speaker.socket, &Request::Reload) {
        Response::Reloaded { report } => {
            assert_eq!(
                report.added,
                vec!["10.77.0.3".parse::<std::net::IpAddr>().expect("ip")]
            );
        }
        other => panic!("the reload must succeed now, got {other:?}"),
    }
    assert_eq!(services(&speaker.socket).len(), 2);
    assert_eq!(peers().len(), 2);
}
