//! `herald agent --kubernetes` end to end, in-process: the Kubernetes-mode runtime
//! ([`KubeRuntime`]) against a MOCKED API server (`kube_api`: no real Kubernetes API server can
//! run on this machine, so the real kube-rs client, reflectors, server-side applies and Lease
//! calls talk to a mock that answers as the API server does), with everything else real: the
//! BGP instance peers with a real BIRD 2 over a veth pair (TCP MD5 included), and the L2
//! announcer answers real ARP requests from another namespace. The runtime runs on a thread that
//! has entered the node's namespace, so its sockets live there. Needs root, `ip`, BIRD 2 and
//! arping; namespaces and daemons are removed on drop, even when a test fails.

#![cfg(feature = "kubernetes")]

mod kube_api;

use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_tests::{Bird, TestLab, VethPair, block_on_in, wait_until_ok};
use kube_api::objects::*;
use kube_api::*;
use serde_json::json;
use speaker::api::control::{self, Agent, Request, Response};
use speaker::bgp::io::instance::PeerStatus;
use speaker::daemon::kube::{KubeRuntime, RuntimeConfig};
use speaker::sources::kube::Identity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const UP: Duration = Duration::from_secs(40);

fn runtime_config(dir: &Path) -> RuntimeConfig {
    let mut cfg = RuntimeConfig::new(Identity {
        node_name: "node1".into(),
        namespace: "herald-system".into(),
        external_ips: Default::default(),
    });
    cfg.debounce = Duration::from_millis(100);
    cfg.key_dir = dir.join("md5");
    cfg.state_dir = None;
    cfg.api.control_socket = dir.join("speaker.sock");
    cfg.status_interval = Duration::from_secs(1);
    cfg.status_poll = Duration::from_millis(300);
    cfg
}

/// node1 peers with tor1 (10.0.1.1, plain) and tor2 (10.0.9.1, TCP MD5 from Secret tor-auth),
/// announcing its pod CIDR and two LoadBalancer services.
fn seed_bgp(api: &FakeApi) {
    seed_two_tors(api);
    api.put(SERVICES, service("api", "10.200.0.11"));
}

fn bird_conf(key: &str) -> String {
    format!(
        "router id 10.0.1.1;\nprotocol device {{}}\n\
         protocol bgp tor1 {{ local 10.0.1.1 as 65000; neighbor 10.0.1.2 as 65001; hold time 9; \
         error wait time 1, 5; connect retry time 1; ipv4 {{ import all; export none; }}; }}\n\
         protocol bgp tor2 {{ local 10.0.9.1 as 65000; neighbor 10.0.9.2 as 65001; hold time 9; \
         password \"{key}\"; error wait time 1, 5; connect retry time 1; \
         ipv4 {{ import all; export none; }}; }}\n"
    )
}

/// Prefixes BIRD holds from `protocol`, with their communities.
fn bird_prefixes(bird: &Bird, protocol: &str) -> Result<Vec<(String, String)>, String> {
    let routes = bird.routes().map_err(|e| e.to_string())?;
    Ok(routes
        .into_iter()
        .filter_map(|(prefix, list)| {
            list.into_iter().find(|r| r.protocol == protocol).map(|r| {
                (
                    prefix,
                    r.attributes
                        .get("BGP.community")
                        .cloned()
                        .unwrap_or_default(),
                )
            })
        })
        .collect())
}

fn expect_prefixes(bird: &Bird, protocol: &str, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
        .collect();
    wait_until_ok(&format!("{want:?} from {protocol}"), UP, || {
        let got = bird_prefixes(bird, protocol)?;
        if got == want {
            Ok(())
        } else {
            Err(format!("BIRD has {got:?}"))
        }
    })
    .expect("BIRD's routes");
}

async fn peers(agent: &Agent) -> Vec<PeerStatus> {
    agent.peers().await.unwrap_or_default()
}

async fn peer(agent: &Agent, name: &str) -> PeerStatus {
    peers(agent)
        .await
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no peer {name}"))
}

/// Polls (every 100 ms, up to `UP`) until `probe` answers `Some`.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + UP;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node (10.0.1.2 and 10.0.9.2 on eth1) and the ToR (10.0.1.1 and 10.0.9.1) on one veth
/// pair, links up.
fn node_and_tor(lab: &TestLab) -> (herald_tests::Netns, herald_tests::Netns, VethPair) {
    let node_ns = lab.netns("node").expect("netns");
    let tor = lab.netns("tor").expect("netns");
    let link = VethPair::create(&node_ns, "eth1", &tor, "eth1").expect("veth");
    for (ns, addrs) in [
        (&node_ns, ["10.0.1.2/24", "10.0.9.2/24"]),
        (&tor, ["10.0.1.1/24", "10.0.9.1/24"]),
    ] {
        ns.link_up("lo").expect("lo");
        for a in addrs {
            ns.addr_add("eth1", a).expect("addr");
        }
        ns.link_up("eth1").expect("eth1");
    }
    (node_ns, tor, link)
}

#[test]
fn kubernetes_mode_drives_real_bgp_sessions_with_bird() {
    let lab = TestLab::new("kube_runtime_bgp").expect("lab");
    let (node_ns, tor, _link) = node_and_tor(&lab);
    let bird_dir = lab.subdir("bird").expect("dir");
    let bird = Bird::start(&tor, &bird_dir, &bird_conf("first-key")).expect("bird");
    let dir: PathBuf = lab.subdir("speaker").expect("dir");

    block_on_in(&node_ns, Some(2), || async {
        let (client, api) = FakeApi::start();
        seed_bgp(&api);
        let mut cfg = runtime_config(&dir);
        // In the node's namespace: nobody else binds it.
        cfg.api.metrics_address = Some("127.0.0.1:19464".parse().expect("address"));
        let runtime = KubeRuntime::start(client, cfg);

        // First desired state: the instance starts; both sessions come up (tor2 with MD5).
        bird.wait_established("tor1", UP).expect("tor1 up");
        bird.wait_established("tor2", UP)
            .expect("tor2 up (MD5 key from the Secret)");
        let routes = [
            ("10.200.0.10/32", "(65000,100)"),
            ("10.200.0.11/32", "(65000,100)"),
            ("10.244.1.0/24", ""),
        ];
        expect_prefixes(&bird, "tor1", &routes);
        expect_prefixes(&bird, "tor2", &routes);
        let agent = eventually("the agent", || async {
            let a = runtime.agent();
            (peers(&a).await.len() == 2).then_some(a)
        })
        .await;
        let t1 = peer(&agent, "tor1").await.transitions;
        let t2 = peer(&agent, "tor2").await.transitions;

        // A CR change (the advertisement's community) reaches the peers without a reset.
        api.put(ADVERTISEMENTS, advertisement("65000:200"));
        let routes = [
            ("10.200.0.10/32", "(65000,200)"),
            ("10.200.0.11/32", "(65000,200)"),
            ("10.244.1.0/24", ""),
        ];
        expect_prefixes(&bird, "tor1", &routes);
        expect_prefixes(&bird, "tor2", &routes);

        // A deleted Service is withdrawn from both peers.
        api.delete(SERVICES, "shop/api");
        let routes = [("10.200.0.10/32", "(65000,200)"), ("10.244.1.0/24", "")];
        expect_prefixes(&bird, "tor1", &routes);
        expect_prefixes(&bird, "tor2", &routes);
        assert_eq!(peer(&agent, "tor1").await.transitions, t1, "tor1 was reset");
        assert_eq!(peer(&agent, "tor2").await.transitions, t2, "tor2 was reset");

        // The ops surface answers for the running instance over the control socket.
        let socket = dir.join("speaker.sock");
        match control::request(&socket, &Request::Peers)
            .await
            .expect("control")
        {
            Response::Peers { peers } => {
                let mut names: Vec<String> = peers.into_iter().map(|p| p.name).collect();
                names.sort();
                assert_eq!(names, ["tor1", "tor2"]);
            }
            other => panic!("unexpected answer {other:?}"),
        }
        match control::request(&socket, &Request::Services)
            .await
            .expect("control")
        {
            Response::Services { services } => {
                let web = services
                    .iter()
                    .find(|s| s.service == "shop/web")
                    .expect("shop/web listed");
                assert_eq!(
                    web.addresses,
                    ["10.200.0.10".parse::<IpAddr>().expect("ip")]
                );
                assert!(web.satisfied);
            }
            other => panic!("unexpected answer {other:?}"),
        }
        // No file to re-read: a clear refusal, not a file-not-found.
        match control::request(&socket, &Request::Reload)
            .await
            .expect("control")
        {
            Response::Error { message } => {
                assert!(message.contains("Kubernetes mode"), "{message}");
            }
            other => panic!("unexpected answer {other:?}"),
        }

        // So does the metrics endpoint, rebound when the instance appeared.
        let metrics = eventually("tor1 Established in /metrics", || async {
            let mut stream = tokio::net::TcpStream::connect("127.0.0.1:19464")
                .await
                .ok()?;
            stream
                .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
                .await
                .ok()?;
            let mut body = String::new();
            stream.read_to_string(&mut body).await.ok()?;
            body.contains(
                "herald_bgp_session_state{peer=\"10.0.1.1\",name=\"tor1\",state=\"Established\"} 1",
            )
            .then_some(body)
        })
        .await;
        assert!(metrics.contains("name=\"tor2\""), "{metrics}");

        // BGPNodeStatus is written by server-side apply with both sessions up.
        let status = eventually("BGPNodeStatus with 2 established peers", || async {
            let s = api.get(NODE_STATUSES, "node1")?;
            (s["status"]["establishedPeers"] == 2).then_some(s)
        })
        .await;
        assert_eq!(status["status"]["localASN"], 65001);
        assert_eq!(status["status"]["totalPeers"], 2);
        assert_eq!(status["spec"]["nodeName"], "node1");
        let peers_status: Vec<&str> = status["status"]["peers"]
            .as_array()
            .expect("peers")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(peers_status, ["tor1", "tor2"]);
        let applies: Vec<Seen> = api
            .seen()
            .into_iter()
            .filter(|s| s.method == "PATCH" && s.path.starts_with(NODE_STATUSES))
            .collect();
        assert!(!applies.is_empty());
        assert!(
            applies
                .iter()
                .all(|s| s.content_type == "application/apply-patch+yaml"
                    && s.query.contains("fieldManager=herald-speaker")),
            "{applies:#?}"
        );

        // Secret rotation: only tor2 is reset (and stays down while BIRD has the old key).
        api.put(SECRETS, secret("second-key"));
        // A reset replaces the session (its counters start again), so watch its state: the
        // new one cannot come up while BIRD still expects the old key.
        eventually("tor2 reset by the rotation", || async {
            (peer(&agent, "tor2").await.state != "Established").then_some(())
        })
        .await;
        wait_until_ok("BIRD sees tor2 go down", UP, || {
            match bird.bgp_state("tor2").map_err(|e| e.to_string())? {
                Some(s) if s == "Established" => Err("tor2 still Established".to_owned()),
                _ => Ok(()),
            }
        })
        .expect("tor2 down");
        let tor1 = peer(&agent, "tor1").await;
        assert_eq!(
            (tor1.state.as_str(), tor1.transitions),
            ("Established", t1),
            "the rotation reset the unrelated peer"
        );
        // BIRD now holds the new key too; tor2 comes back.
        std::fs::write(bird_dir.join("bird.conf"), bird_conf("second-key")).expect("conf");
        bird.birdc("configure").expect("birdc configure");
        bird.wait_established("tor2", UP)
            .expect("tor2 up with the new key");
        eventually("tor2 Established with the new key", || async {
            (peer(&agent, "tor2").await.state == "Established").then_some(())
        })
        .await;
        let tor1 = peer(&agent, "tor1").await;
        assert_eq!(
            (tor1.state.as_str(), tor1.transitions),
            ("Established", t1),
            "the rotation reset the unrelated peer"
        );
        assert_eq!(
            bird.bgp_state("tor1").expect("birdc").as_deref(),
            Some("Established")
        );
        let files: Vec<_> = std::fs::read_dir(dir.join("md5"))
            .expect("key dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, ["10.0.9.1.2.key"], "the old key file is removed");

        // Relabelling the node out of the BGPClusterConfig's selector stops BGP on it.
        let mut off = node("node1", "10.0.1.2", "10.244.1.0/24");
        off["metadata"]["labels"]["bgp"] = json!("off");
        api.put(NODES, off);
        wait_until_ok("BIRD sees the sessions go", UP, || {
            match bird.bgp_state("tor1").map_err(|e| e.to_string())? {
                Some(s) if s == "Established" => Err("tor1 still Established".to_owned()),
                _ => Ok(()),
            }
        })
        .expect("BGP stopped");
        eventually("the agent without BGP", || async {
            runtime.agent().instance.is_none().then_some(())
        })
        .await;

        assert!(api.get(NODE_STATUSES, "node1").is_some());
        runtime.shutdown().await;
        assert!(!socket.exists(), "the control socket is removed on stop");
        assert_eq!(
            api.get(NODE_STATUSES, "node1"),
            None,
            "a stopped speaker leaves no BGPNodeStatus behind"
        );
    });
}

/// An ARP request for `vip` from `client` is answered (Habets arping prints "bytes from").
fn arp_answered(client: &str, vip: &str) -> bool {
    std::process::Command::new("ip")
        .args([
            "netns", "exec", client, "arping", "-c", "1", "-w", "1", "-i", "eth1", vip,
        ])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("bytes from"))
}

async fn wait_arp(client: &str, vip: &str) {
    let (c, v) = (client.to_owned(), vip.to_owned());
    let answered = tokio::task::spawn_blocking(move || {
        wait_until_ok(&format!("an ARP reply for {v}"), UP, || {
            if arp_answered(&c, &v) {
                Ok(())
            } else {
                Err("no reply")
            }
        })
    })
    .await
    .expect("probe thread");
    answered.expect("ARP answered");
}

#[test]
fn without_the_bgpadvertisement_crd_services_still_go_out_over_l2_on_one_lease() {
    let lab = TestLab::new("kube_runtime_l2").expect("lab");
    let node_ns = lab.netns("node").expect("netns");
    let client = lab.netns("client").expect("netns");
    let _link = VethPair::create(&node_ns, "eth1", &client, "eth1").expect("veth");
    for (ns, addr) in [(&node_ns, "10.0.1.2/24"), (&client, "10.0.1.1/24")] {
        ns.link_up("lo").expect("lo");
        ns.addr_add("eth1", addr).expect("addr");
        ns.link_up("eth1").expect("eth1");
    }
    let client_name = client.name().to_owned();
    let dir: PathBuf = lab.subdir("speaker").expect("dir");

    // A current-thread runtime, so every task's log lines reach this thread's subscriber.
    block_on_in(&node_ns, None, || async {
        let (logs, _guard) = Logs::capture();

        let (kube, api) = FakeApi::start();
        seed_bgp(&api);
        // The BGPAdvertisement CRD is not installed, and tor2's BGPPeerConfig is missing.
        api.fail(ADVERTISEMENTS, Some(404));
        api.delete(PEER_CONFIGS, "signed");
        api.put(
            L2_POLICIES,
            json!({"apiVersion": "herald.io/v1alpha1", "kind": "L2AnnouncementPolicy",
                   "metadata": {"name": "l2"}, "spec": {"loadBalancerIPs": true, "interfaces": ["^eth1$"]}}),
        );
        let runtime = KubeRuntime::start(kube, runtime_config(&dir));

        // L2 works: the client's ARP requests for both VIPs are answered by this node.
        wait_arp(&client_name, "10.200.0.10").await;
        wait_arp(&client_name, "10.200.0.11").await;
        let agent = runtime.agent();
        let report = agent.l2().expect("l2 report");
        assert!(
            report.vips.iter().all(|v| v.led_by_me) && report.vips.len() == 2,
            "{report:?}"
        );
        // BGP runs too (its peers exist; nothing is advertised without the CRD).
        assert_eq!(peers(&agent).await.len(), 2);

        // More services: announced without restarting the announcer, and the API traffic of
        // the election stays on this node's one Lease.
        for i in 0..20 {
            api.put(
                SERVICES,
                service(&format!("svc{i}"), &format!("10.200.1.{}", i + 1)),
            );
        }
        wait_arp(&client_name, "10.200.1.20").await;
        let lease = api
            .get(LEASES, "herald-system/herald-l2-node1")
            .expect("this node's Lease");
        assert_eq!(lease["spec"]["holderIdentity"], "node1");
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 15);
        let lease_calls: Vec<(String, String)> = api
            .seen()
            .into_iter()
            .filter(|s| s.path.contains("/leases"))
            .map(|s| (s.method, s.path))
            .collect();
        assert!(lease_calls.len() >= 2, "{lease_calls:?}");
        for (method, path) in &lease_calls {
            assert!(
                (method == "PATCH" && path == &format!("{LEASES}/herald-l2-node1"))
                    || (method == "GET" && path == LEASES),
                "unexpected Lease request {method} {path}"
            );
        }

        // The missing CRD and the missing BGPPeerConfig were reported once each, across the
        // watch retries and the re-translations the new services caused.
        eventually("the watcher retrying the missing CRD", || async {
            (api.seen()
                .iter()
                .filter(|s| s.path == ADVERTISEMENTS)
                .count()
                >= 3)
                .then_some(())
        })
        .await;
        assert_eq!(logs.count("CustomResourceDefinition not installed"), 1);
        assert_eq!(logs.count("BGPPeerConfig signed not found"), 1);
        let status = eventually("BGPNodeStatus listing the problems", || async {
            let s = api.get(NODE_STATUSES, "node1")?;
            (s["status"]["problems"].as_array()?.len() == 2).then_some(s)
        })
        .await;
        let problems = status["status"]["problems"].to_string();
        assert!(
            problems
                .contains("bgpadvertisements.herald.io: CustomResourceDefinition not installed")
                && problems.contains("BGPPeerConfig signed not found"),
            "{problems}"
        );

        // Leases forbidden (RBAC): every renewal fails and is retried, reported once.
        api.clear_seen();
        api.fail(LEASES, Some(403));
        eventually("three failed renewals", || async {
            (api.seen()
                .iter()
                .filter(|s| s.path.contains("/leases"))
                .count()
                >= 3)
                .then_some(())
        })
        .await;
        assert_eq!(logs.count("store renewal failed"), 1);
        api.fail(LEASES, None);
        eventually("a renewal working again", || async {
            (logs.count("store renewal works again") == 1).then_some(())
        })
        .await;

        // Without an L2AnnouncementPolicy the announcer stops and releases its Lease.
        api.delete(L2_POLICIES, "l2");
        eventually("the Lease released", || async {
            api.get(LEASES, "herald-system/herald-l2-node1")
                .is_none()
                .then_some(())
        })
        .await;
        assert!(runtime.agent().l2.is_none());
        runtime.shutdown().await;
    });
}

#[test]
fn a_failing_start_is_retried_logged_once_and_recovers() {
    let lab = TestLab::new("kube_runtime_retry").expect("lab");
    let node_ns = lab.netns("node").expect("netns");
    node_ns.link_up("lo").expect("lo");
    let dir: PathBuf = lab.subdir("speaker").expect("dir");

    block_on_in(&node_ns, None, || async {
        let (logs, _guard) = Logs::capture();

        // Something else holds the BGP port the BGPClusterConfig asks for.
        let blocker = std::net::TcpListener::bind("0.0.0.0:17979").expect("bind the port first");
        let (kube, api) = FakeApi::start();
        seed_bgp(&api);
        let mut cc = api.get(CLUSTER_CONFIGS, "all").expect("cluster config");
        cc["spec"]["bgpInstances"][0]["localPort"] = json!(17979);
        api.put(CLUSTER_CONFIGS, cc);
        let mut cfg = runtime_config(&dir);
        cfg.retry = Duration::from_millis(200);
        let runtime = KubeRuntime::start(kube, cfg);

        eventually("the first failed start", || async {
            (logs.count("desired state not fully applied") == 1).then_some(())
        })
        .await;
        // Many retries later (200 ms apart) it is still reported once, and BGP is not running.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(logs.count("desired state not fully applied"), 1);
        assert!(runtime.agent().instance.is_none());

        // The port is free again: the next retry starts the instance.
        drop(blocker);
        eventually("the instance started", || async {
            runtime.agent().instance.is_some().then_some(())
        })
        .await;
        assert_eq!(logs.count("desired state applied"), 1);
        assert_eq!(peers(&runtime.agent()).await.len(), 2);
        runtime.shutdown().await;
    });
}

/// EndpointSlice `shop/<service>-1` with one ready endpoint per (address, node).
fn endpoint_slice(service: &str, endpoints: &[(&str, &str)]) -> serde_json::Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": format!("{service}-1"), "namespace": "shop",
                        "labels": {"kubernetes.io/service-name": service}},
           "addressType": "IPv4",
           "ports": [{"port": 8080, "protocol": "TCP"}],
           "endpoints": endpoints.iter().map(|(ip, node)| json!({
               "addresses": [ip], "nodeName": node, "conditions": {"ready": true}
           })).collect::<Vec<_>>()})
}

/// Backends of `vip`'s datapath entry as the running agent reports them (`herald datapath
/// status` over the control socket); `None` while the agent has no such entry.
async fn datapath_backends(socket: &Path, vip: &str) -> Option<Vec<String>> {
    let Ok(Response::Datapath { report }) = control::request(socket, &Request::Datapath).await
    else {
        return None;
    };
    let maps = report.maps?;
    let entry = maps["services"]
        .as_array()?
        .iter()
        .find(|s| s["vip"] == vip)?
        .clone();
    let count = entry["backends"].as_u64()? as usize;
    let mut backends: Vec<String> = maps["backends"]
        .as_array()?
        .iter()
        .map(|b| {
            format!(
                "{}:{}@{}",
                b["addr"].as_str().unwrap_or(""),
                b["port"],
                b["node"].as_str().unwrap_or("")
            )
        })
        .collect();
    backends.sort();
    (backends.len() >= count).then_some(backends)
}

#[test]
fn kubernetes_mode_programs_the_datapath_from_endpoint_slices_and_announces_once_served() {
    let lab = TestLab::new("kube_runtime_dp").expect("lab");
    let (node_ns, tor, _link) = node_and_tor(&lab);
    // node2 (10.0.2.2) is reached through the tor: the datapath resolves that next hop.
    node_ns
        .ip(&["route", "add", "10.0.2.0/24", "via", "10.0.1.1"])
        .expect("route to node2");
    let bird = Bird::start(
        &tor,
        &lab.subdir("bird").expect("dir"),
        &bird_conf("first-key"),
    )
    .expect("bird");
    let dir: PathBuf = lab.subdir("speaker").expect("dir");
    // A bpf filesystem of the test's own for the agent's pins (unmounted below, even on failure).
    let pins = dir.join("bpffs");
    std::fs::create_dir_all(&pins).expect("bpffs dir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "bpf", "bpf"])
        .arg(&pins)
        .status()
        .expect("mount");
    assert!(mounted.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(pins.clone());

    block_on_in(&node_ns, Some(2), || async {
        let (client, api) = FakeApi::start();
        seed_two_tors(&api);
        // node2's InternalIP is the underlay address of its endpoint; the tor resolves it.
        api.put(
            ENDPOINT_SLICES,
            endpoint_slice("web", &[("10.244.1.10", "node1"), ("10.244.2.10", "node2")]),
        );
        let mut cfg = runtime_config(&dir);
        cfg.datapath = Some(
            datapath::DatapathConfig::parse(
                &format!(
                    "pinDir: {}\nkeepPinnedMaps: false\ninterfaces:\n  - {{ name: eth1, xdp: generic }}\nmaglev: {{ tableSize: 251 }}\n",
                    pins.join("node").display()
                ),
                "test",
            )
            .expect("datapath section"),
        );
        let runtime = KubeRuntime::start(client, cfg);
        let socket = dir.join("speaker.sock");

        // The Service's address, its port and the ready endpoints on their nodes' InternalIPs.
        let backends = eventually("the datapath entry", || async {
            datapath_backends(&socket, "10.200.0.10").await
        })
        .await;
        assert_eq!(
            backends,
            ["10.244.1.10:8080@10.0.1.2", "10.244.2.10:8080@10.0.2.2"],
            "node1's own backend is local, node2's goes to its InternalIP"
        );
        // Served, so announced.
        bird.wait_established("tor1", UP).expect("tor1 up");
        expect_prefixes(
            &bird,
            "tor1",
            &[("10.200.0.10/32", "(65000,100)"), ("10.244.1.0/24", "")],
        );

        // An EndpointSlice change reaches the kernel maps.
        api.put(
            ENDPOINT_SLICES,
            endpoint_slice(
                "web",
                &[
                    ("10.244.1.10", "node1"),
                    ("10.244.1.11", "node1"),
                    ("10.244.2.10", "node2"),
                ],
            ),
        );
        let backends = eventually("the new endpoint in the kernel", || async {
            datapath_backends(&socket, "10.200.0.10")
                .await
                .filter(|b| b.len() == 3)
        })
        .await;
        assert!(
            backends.contains(&"10.244.1.11:8080@10.0.1.2".to_owned()),
            "{backends:?}"
        );

        // The last endpoint goes: no entry, and the address is withdrawn.
        api.put(ENDPOINT_SLICES, endpoint_slice("web", &[]));
        eventually("the entry removed", || async {
            datapath_backends(&socket, "10.200.0.10")
                .await
                .is_none()
                .then_some(())
        })
        .await;
        expect_prefixes(&bird, "tor1", &[("10.244.1.0/24", "")]);
        runtime.shutdown().await;
    });
    drop(bird);
}

/// Kubernetes mode, BGP unnumbered: the `BGPClusterConfig` peer names only `interface: eth1`;
/// the speaker finds BIRD (its `radv` protocol and a dynamic `neighbor range fe80::/10`) by
/// router advertisements on a link holding nothing but the link-local addresses fe80::a (node)
/// and fe80::b (ToR), and announces its pod CIDR and the service with IPv6 next hops.
#[test]
fn kubernetes_mode_peers_unnumbered_by_interface() {
    let lab = TestLab::new("kube_runtime_unnum").expect("lab");
    let node_ns = lab.netns("node").expect("netns");
    let tor = lab.netns("tor").expect("netns");
    let _link = VethPair::create(&node_ns, "eth1", &tor, "eth1").expect("veth");
    for (ns, ll) in [(&node_ns, "fe80::a/64"), (&tor, "fe80::b/64")] {
        ns.ip(&["link", "set", "eth1", "addrgenmode", "none"])
            .expect("no kernel link-local");
        ns.link_up("lo").expect("lo");
        ns.link_up("eth1").expect("eth1");
        ns.ip(&["addr", "add", ll, "dev", "eth1", "nodad"])
            .expect("link-local");
    }
    let bird = Bird::start(
        &tor,
        &lab.subdir("bird").expect("dir"),
        "router id 10.0.1.1;\nprotocol device {}\n\
         protocol radv { ipv6; interface \"eth1\" { min ra interval 3; max ra interval 4; default lifetime 0; }; }\n\
         protocol bgp tor { local as 65000; neighbor range fe80::/10 as 65001; interface \"eth1\"; \
         dynamic name \"dyn\"; hold time 9; error wait time 1, 5; \
         ipv4 { import all; export none; extended next hop on; }; }\n",
    )
    .expect("bird");
    let dir: PathBuf = lab.subdir("speaker").expect("dir");

    block_on_in(&node_ns, Some(2), || async {
        let (client, api) = FakeApi::start();
        api.put(NODES, node("node1", "10.0.1.2", "10.244.1.0/24"));
        api.put(
            CLUSTER_CONFIGS,
            json!({"apiVersion": "herald.io/v1alpha1", "kind": "BGPClusterConfig",
                   "metadata": {"name": "all"},
                   "spec": {"nodeSelector": {"matchLabels": {"bgp": "on"}},
                            "bgpInstances": [{"name": "main", "localASN": 65001, "peers": [
                                {"name": "tor", "interface": "eth1", "peerASN": 65000,
                                 "peerConfigRef": {"name": "plain"}}]}]}}),
        );
        api.put(PEER_CONFIGS, peer_config("plain", 9, None));
        api.put(ADVERTISEMENTS, advertisement("65000:100"));
        api.put(SERVICES, service("web", "10.200.0.10"));
        let runtime = KubeRuntime::start(client, runtime_config(&dir));
        // BIRD names its first dynamic session dyn1.
        expect_prefixes(
            &bird,
            "dyn1",
            &[("10.200.0.10/32", "(65000,100)"), ("10.244.1.0/24", "")],
        );
        let agent = runtime.agent();
        let tor = peer(&agent, "tor").await;
        assert_eq!(tor.address, "fe80::b".parse::<IpAddr>().expect("ip"));
        assert_eq!(tor.state, "Established");
        let shown = bird.birdc("show route 10.244.1.0/24 all").expect("birdc");
        assert!(shown.contains("fe80::a"), "BIRD's next hop: {shown}");
        runtime.shutdown().await;
    });
}
