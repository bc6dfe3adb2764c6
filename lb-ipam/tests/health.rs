//! `lb-ipam run`'s `/healthz` and `/readyz`: the controller's phase against the MOCKED API server
//! (not ready while the caches list, ready after the first sync pass), served on a real socket.

#![cfg(feature = "kubernetes")]

use std::sync::Arc;
use std::time::Duration;

use lb_ipam::controller::{Health, Phase};
use lb_ipam::endpoint::{EndpointConfig, bind, serve};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod mock_api;
use mock_api::MockApi;

async fn get(address: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: pod\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
}

#[tokio::test]
async fn readyz_turns_200_after_the_first_sync_and_metrics_are_not_served() {
    let health = Health::default();
    let listener = bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    let server = tokio::spawn(serve(
        listener,
        Arc::new(health.clone()),
        EndpointConfig::default(),
    ));

    // Before the controller starts: alive, not ready, and no data exposed.
    assert!(get(address, "/healthz").await.starts_with("HTTP/1.1 200"));
    let ready = get(address, "/readyz").await;
    assert!(
        ready.starts_with("HTTP/1.1 503") && ready.contains("caches"),
        "{ready}"
    );
    assert!(get(address, "/metrics").await.starts_with("HTTP/1.1 404"));

    let (client, api) = MockApi::start(&[
        (
            "/api/v1/services",
            json!({"apiVersion": "v1", "kind": "ServiceList",
                   "metadata": {"resourceVersion": "1"}, "items": []}),
        ),
        (
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "NamespaceList",
                   "metadata": {"resourceVersion": "1"}, "items": []}),
        ),
        (
            "/apis/herald.io/v1alpha1/loadbalancerippools",
            json!({"apiVersion": "herald.io/v1alpha1", "kind": "LoadBalancerIPPoolList",
                   "metadata": {"resourceVersion": "1"}, "items": []}),
        ),
    ]);
    let run_health = health.clone();
    let run = tokio::spawn(async move {
        lb_ipam::controller::run_with_health(client, Duration::from_millis(20), &run_health).await
    });
    let mut phase = health.phase();
    for _ in 0..200 {
        if phase == Phase::Synced {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        phase = health.phase();
    }
    run.abort();
    assert_eq!(phase, Phase::Synced, "seen: {:#?}", api.seen());
    let ready = get(address, "/readyz").await;
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.ends_with("ok\n"),
        "{ready}"
    );
    server.abort();
}
