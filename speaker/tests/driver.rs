//! The tokio driver in-process: two speaker instances in one private network namespace, each
//! configured to connect to the other (so their connections collide and RFC 4271 §6.8 must pick
//! one), then the control socket and the Prometheus endpoint of one of them. Real sockets on the
//! namespace's loopback; the test thread enters the namespace before starting its runtime.

use std::time::Duration;

use herald_tests::{TestLab, block_on_in};
use speaker::advertise::ServiceState;
use speaker::api::control::{self, Request, Response};
use speaker::bgp::io::instance::{Instance, PeerStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(
    me: &str,
    my_port: u16,
    peer: &str,
    peer_port: u16,
    extra: &str,
) -> speaker::config::Config {
    let yaml = format!(
        "node:\n  name: {me}\n  routerId: {me}\nbgp:\n  localASN: {asn}\n  listen:\n    address: {me}\n    port: {my_port}\n{extra}  peers:\n    \
         - address: {peer}\n      asn: {peer_asn}\n      port: {peer_port}\n      localAddress: {me}\n      \
         timers:\n        holdTimeSeconds: 9\n        connectRetryTimeSeconds: 1\n",
        asn = if me.ends_with(".1") { 65001 } else { 65002 },
        peer_asn = if peer.ends_with(".1") { 65001 } else { 65002 },
    );
    speaker::config::parse(&yaml, me).expect("valid config")
}

async fn wait_peer(
    instance: &Instance,
    what: &str,
    pred: impl Fn(&PeerStatus) -> bool,
) -> PeerStatus {
    for _ in 0..300 {
        let peers = instance.handle().peers().await.expect("peers");
        if let Some(p) = peers.into_iter().find(|p| pred(p)) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn two_instances_collide_establish_exchange_routes_and_report() {
    let lab = TestLab::new("driver_collision").expect("lab");
    let ns = lab.netns("both").expect("netns");
    ns.link_up("lo").expect("lo up");
    ns.addr_add("lo", "127.0.1.1/32").expect("addr");
    ns.addr_add("lo", "127.0.1.2/32").expect("addr");
    let dir = lab.dir().to_owned();
    // The whole body runs on a thread that lives in the namespace.
    block_on_in(&ns, None, move || async move {
        let a = Instance::start(
            config(
                "127.0.1.1",
                17901,
                "127.0.1.2",
                17902,
                "  staticRoutes:\n    - prefix: 192.0.2.0/24\n",
            ),
            ServiceState::default(),
        )
        .await
        .expect("instance a");
        let b = Instance::start(
            config(
                "127.0.1.2",
                17902,
                "127.0.1.1",
                17901,
                "  importPolicy: accept-all\n",
            ),
            ServiceState::default(),
        )
        .await
        .expect("instance b");
        // Both connect out at once; exactly one connection must survive on both sides.
        let at_a = wait_peer(&a, "a Established", |p| p.state == "Established").await;
        let at_b = wait_peer(&b, "b Established with the route", |p| {
            p.state == "Established" && p.prefixes_accepted == 1
        })
        .await;
        assert_eq!(at_a.remote_asn, Some(65002));
        assert_eq!(at_b.remote_asn, Some(65001));
        assert_eq!(at_a.prefixes_sent, 1);
        assert!(
            at_a.capabilities
                .iter()
                .any(|c| c == "enhanced-route-refresh")
        );
        // Stable: a second later nobody has reset anything.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let again = wait_peer(&a, "a still Established", |p| p.state == "Established").await;
        assert_eq!(again.transitions, at_a.transitions);

        // The control socket answers the CLI's request.
        let socket = dir.join("a.sock");
        let config_path = dir.join("a.yaml");
        let server = tokio::spawn(control::serve(socket.clone(), a.handle(), config_path));
        let mut response = None;
        for _ in 0..50 {
            if let Ok(r) = control::request(&socket, &Request::Peers).await {
                response = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match response.expect("control socket answered") {
            Response::Peers { peers } => {
                assert_eq!(peers.len(), 1);
                assert_eq!(peers[0].state, "Established");
            }
            other => panic!("unexpected {other:?}"),
        }
        server.abort();

        // Prometheus scrape.
        let metrics = tokio::spawn(speaker::api::metrics::serve(
            "127.0.1.1:19179".parse().expect("addr"),
            a.handle(),
        ));
        let mut body = String::new();
        for _ in 0..50 {
            if let Ok(mut s) = tokio::net::TcpStream::connect("127.0.1.1:19179").await {
                s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
                    .await
                    .expect("write");
                s.read_to_string(&mut body).await.expect("read");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(
            body.contains("herald_bgp_session_up{peer=\"127.0.1.2\",name=\"127.0.1.2\"} 1"),
            "{body}"
        );
        assert!(
            body.contains(
                "herald_bgp_prefixes_advertised{peer=\"127.0.1.2\",name=\"127.0.1.2\"} 1"
            )
        );
        metrics.abort();

        // Shutting b down (no GR) sends an RFC 8203 Cease that a sees.
        b.shutdown().await;
        let down = wait_peer(&a, "a down", |p| p.state != "Established").await;
        assert!(
            down.last_error
                .as_deref()
                .is_some_and(|e| e.contains("6/2") && e.contains("speaker stopping")),
            "{:?}",
            down.last_error
        );
    });
}

/// A BFD key file that cannot be used stops the instance from starting, and the error names the
/// configuration key, the peer and the file, never a key.
#[tokio::test]
async fn an_unusable_bfd_key_file_fails_start_naming_key_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = |file: &std::path::Path| {
        let yaml = format!(
            "node:\n  name: n1\n  routerId: 10.0.0.1\nbgp:\n  localASN: 65001\n  listen:\n    port: 0\n  peers:\n    \
             - address: 10.0.0.254\n      asn: 65000\n      passive: true\n      bfd:\n        authentication:\n          \
             type: keyedSha1\n          keyId: 1\n          passwordFile: {}\n",
            file.display()
        );
        let config = speaker::config::parse(&yaml, "t").expect("valid config");
        Instance::start(config, ServiceState::default())
    };
    let missing = dir.path().join("absent.key");
    let error = start(&missing)
        .await
        .expect_err("missing key file")
        .to_string();
    assert!(
        error.contains("bgp.peers[10.0.0.254].bfd.authentication.passwordFile")
            && error.contains(&missing.display().to_string()),
        "{error}"
    );
    let long = dir.path().join("long.key");
    std::fs::write(&long, "a-secret-longer-than-twenty-octets\n").expect("write");
    let error = start(&long).await.expect_err("key too long").to_string();
    assert!(error.contains("1 to 20"), "{error}");
    assert!(!error.contains("a-secret"), "the key leaked: {error}");
}
