//! The small HTTP/1.1 endpoint every Herald process serves to operators and the kubelet:
//! `/healthz`, `/readyz` and, where the process has any, Prometheus `/metrics`. The agent,
//! `herald-l2` and the `lb-ipam` controller share it. It lives in lb-ipam (feature `http`)
//! because lb-ipam is the one crate all three can depend on without a cycle: the agent depends
//! on both lb-ipam and arp-responder.
//!
//! One request per connection (`Connection: close`). The request head is parsed with `httparse`
//! (hyper's parser) under a read timeout and a size cap; at most
//! [`EndpointConfig::max_connections`] connections are served at once (more wait in the listen
//! backlog); only `GET` and `HEAD` are answered. Answers are HTTP/1.1 whatever minor version the
//! request names, as RFC 9110 §2.5 allows ("a server SHOULD send a response version equal to the
//! highest version to which the server is conformant that has a major version less than or equal
//! to the one received in the request").
//!
//! The helpers the `/metrics` collectors share ([`encode_family`], [`label_value`], [`render`])
//! are here too, so every process encodes its snapshots the same way with `prometheus-client`.
//!
//! I/O boundary: the listener in [`serve`]; everything else is pure.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::TypedMetric;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The content type of [`Endpoints::metrics`] bodies: `prometheus-client` encodes OpenMetrics.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const TEXT: &str = "text/plain; charset=utf-8";

/// Request heads larger than this are refused (431): probes and scrapes send a few hundred bytes.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Escapes a label value as the text format requires (`\\`, `\"`, `\n`): prometheus-client
/// 0.24 writes label values verbatim.
pub fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Encodes one metric family (its `HELP` and `TYPE` even when it has no samples) from a
/// collector: one sample per `(labels, value)`.
pub fn encode_family<L, M>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result
where
    L: EncodeLabelSet,
    M: EncodeMetric + TypedMetric,
{
    let mut family = encoder.encode_descriptor(name, help, None, M::TYPE)?;
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Encodes one unlabelled metric (`name value`) from a collector.
pub fn encode_metric<M>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric: M,
) -> fmt::Result
where
    M: EncodeMetric + TypedMetric,
{
    metric.encode(encoder.encode_descriptor(name, help, None, M::TYPE)?)
}

/// `collector`'s metrics in the OpenMetrics text format (ending with `# EOF`).
pub fn render(collector: impl Collector) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Whether the process is ready, and why (or why not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// `/readyz` answers 200 when set, else 503.
    pub ready: bool,
    /// The body of `/readyz`.
    pub reason: String,
}

/// What a process exposes on the endpoint.
pub trait Endpoints: Send + Sync + 'static {
    /// `/readyz`. (`/healthz` needs nothing: answering at all proves the runtime is alive.)
    fn readiness(&self) -> Readiness;

    /// `/metrics`: `None` where the process exposes none (404), `Err` when a snapshot could not
    /// be taken (503).
    fn metrics(&self) -> impl Future<Output = Option<Result<String, String>>> + Send {
        std::future::ready(None)
    }
}

/// Limits of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Time to receive the request head, and again to send the answer.
    pub io_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            io_timeout: Duration::from_secs(5),
            max_connections: 16,
        }
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body (omitted on the wire for `HEAD`).
    pub body: String,
}

impl Response {
    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: TEXT,
            body: body.into(),
        }
    }

    fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "",
        }
    }

    /// The bytes on the wire; `head_only` for `HEAD` (same headers, no body).
    pub fn encode(&self, head_only: bool) -> Vec<u8> {
        let allow = if self.status == 405 {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.reason(),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// A parsed request: what was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The path without its query.
    pub path: String,
    /// `HEAD` rather than `GET`.
    pub head_only: bool,
}

/// Parses a request head: `None` while it is incomplete, `Err` with the answer to send when it
/// is malformed or asks for something other than `GET`/`HEAD`.
pub fn parse_head(buf: &[u8]) -> Option<Result<Request, Response>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Partial) => None,
        Ok(httparse::Status::Complete(_)) => {
            let (Some(method), Some(target)) = (request.method, request.path) else {
                return Some(Err(Response::text(400, "bad request\n")));
            };
            let head_only = match method {
                "GET" => false,
                "HEAD" => true,
                _ => return Some(Err(Response::text(405, "method not allowed\n"))),
            };
            let path = target.split_once('?').map_or(target, |(p, _)| p);
            Some(Ok(Request {
                path: path.to_owned(),
                head_only,
            }))
        }
        Err(httparse::Error::TooManyHeaders) => {
            Some(Err(Response::text(431, "too many headers\n")))
        }
        Err(_) => Some(Err(Response::text(400, "bad request\n"))),
    }
}

/// The answer to `request`.
pub async fn respond<E: Endpoints>(endpoints: &E, request: &Request) -> Response {
    match request.path.as_str() {
        // Answering at all is the liveness proof: the process's runtime is running.
        "/healthz" => Response::text(200, "ok\n"),
        "/readyz" => {
            let readiness = endpoints.readiness();
            let status = if readiness.ready { 200 } else { 503 };
            Response::text(status, format!("{}\n", readiness.reason))
        }
        "/metrics" => match endpoints.metrics().await {
            Some(Ok(body)) => Response {
                status: 200,
                content_type: OPENMETRICS,
                body,
            },
            Some(Err(error)) => Response::text(503, format!("{error}\n")),
            None => Response::text(404, "no metrics here\n"),
        },
        _ => Response::text(404, "not found\n"),
    }
}

/// Binds `address` (the caller has checked whether it may be a non-loopback one).
pub async fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Serves `endpoints` on `listener` until the returned future is dropped (which also ends the
/// connections in flight).
pub async fn serve<E: Endpoints>(
    listener: TcpListener,
    endpoints: Arc<E>,
    config: EndpointConfig,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        // Waiting for a permit before accepting leaves excess clients in the backlog.
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| io::Error::other("endpoint permits closed"))?;
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // EMFILE and friends pass; do not spin on them.
                tracing::warn!(%error, "endpoint accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let endpoints = endpoints.clone();
        connections.spawn(async move {
            let _permit = permit;
            if let Err(error) = connection(stream, &*endpoints, config.io_timeout).await {
                tracing::debug!(%error, "endpoint connection failed");
            }
        });
    }
}

async fn connection<E: Endpoints>(
    mut stream: TcpStream,
    endpoints: &E,
    io_timeout: Duration,
) -> io::Result<()> {
    let (response, head_only) = match tokio::time::timeout(io_timeout, read_head(&mut stream)).await
    {
        Err(_) => (Response::text(408, "request timeout\n"), false),
        Ok(Err(error)) => return Err(error),
        Ok(Ok(Err(response))) => (response, false),
        Ok(Ok(Ok(request))) => (respond(endpoints, &request).await, request.head_only),
    };
    let bytes = response.encode(head_only);
    tokio::time::timeout(io_timeout, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "writing the answer"))?
}

async fn read_head(stream: &mut TcpStream) -> io::Result<Result<Request, Response>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the request head ended",
            ));
        }
        let read = chunk
            .get(..n)
            .ok_or_else(|| io::Error::other("read reported more bytes than the buffer holds"))?;
        buf.extend_from_slice(read);
        if let Some(parsed) = parse_head(&buf) {
            return Ok(parsed);
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Ok(Err(Response::text(431, "request head too large\n")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed {
        ready: bool,
        metrics: Option<Result<String, String>>,
    }

    impl Endpoints for Fixed {
        fn readiness(&self) -> Readiness {
            Readiness {
                ready: self.ready,
                reason: if self.ready { "ok" } else { "syncing" }.into(),
            }
        }

        async fn metrics(&self) -> Option<Result<String, String>> {
            self.metrics.clone()
        }
    }

    fn get(path: &str) -> Request {
        Request {
            path: path.into(),
            head_only: false,
        }
    }

    #[derive(Debug)]
    struct Sample;

    impl Collector for Sample {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
            use prometheus_client::metrics::counter::ConstCounter;
            use prometheus_client::metrics::gauge::ConstGauge;
            encode_family(
                &mut encoder,
                "herald_things",
                "Things.",
                [(
                    vec![("name", label_value("a\"b\\c\nd"))],
                    ConstGauge::new(3u64),
                )],
            )?;
            encode_metric(
                &mut encoder,
                "herald_events",
                "Events.",
                ConstCounter::new(7u64),
            )
        }
    }

    #[test]
    fn render_escapes_labels_and_suffixes_counters() {
        let text = render(Sample).expect("render");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"# TYPE herald_things gauge"), "{text}");
        assert!(
            lines.contains(&"herald_things{name=\"a\\\"b\\\\c\\nd\"} 3"),
            "{text}"
        );
        assert!(lines.contains(&"# TYPE herald_events counter"), "{text}");
        assert!(lines.contains(&"herald_events_total 7"), "{text}");
        assert_eq!(lines.last(), Some(&"# EOF"));
    }

    #[test]
    fn parse_head_waits_for_the_blank_line_and_drops_the_query() {
        assert_eq!(parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(
            parse_head(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Some(Ok(get("/metrics")))
        );
        assert_eq!(
            parse_head(b"HEAD /readyz HTTP/1.1\r\n\r\n"),
            Some(Ok(Request {
                path: "/readyz".into(),
                head_only: true
            }))
        );
    }

    #[test]
    fn parse_head_refuses_other_methods_and_garbage() {
        let status = |buf: &[u8]| match parse_head(buf) {
            Some(Err(r)) => r.status,
            other => panic!("{other:?}"),
        };
        assert_eq!(status(b"POST /metrics HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(status(b"GET\x01 / HTTP/1.1\r\n\r\n"), 400);
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            status(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            431
        );
    }

    #[tokio::test]
    async fn readyz_follows_readiness_and_metrics_absent_is_404() {
        let mut e = Fixed {
            ready: false,
            metrics: None,
        };
        let r = respond(&e, &get("/readyz")).await;
        assert_eq!((r.status, r.body.as_str()), (503, "syncing\n"));
        e.ready = true;
        assert_eq!(respond(&e, &get("/readyz")).await.status, 200);
        assert_eq!(respond(&e, &get("/healthz")).await.status, 200);
        assert_eq!(respond(&e, &get("/metrics")).await.status, 404);
        assert_eq!(respond(&e, &get("/")).await.status, 404);
        e.metrics = Some(Err("no snapshot".into()));
        assert_eq!(respond(&e, &get("/metrics")).await.status, 503);
        e.metrics = Some(Ok("# EOF\n".into()));
        let r = respond(&e, &get("/metrics")).await;
        assert_eq!((r.status, r.content_type), (200, OPENMETRICS));
    }

    #[test]
    fn head_answers_carry_the_length_but_no_body() {
        let r = Response::text(200, "ok\n");
        let full = String::from_utf8(r.encode(false)).expect("utf8");
        let head = String::from_utf8(r.encode(true)).expect("utf8");
        assert!(full.starts_with("HTTP/1.1 200 OK\r\n") && full.ends_with("\r\n\r\nok\n"));
        assert!(head.contains("Content-Length: 3\r\n") && head.ends_with("\r\n\r\n"));
    }

    async fn exchange(address: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream.write_all(request).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer
    }

    #[tokio::test]
    async fn serves_over_a_socket_and_times_out_silent_clients() {
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let address = listener.local_addr().expect("addr");
        let config = EndpointConfig {
            io_timeout: Duration::from_millis(200),
            max_connections: 1,
        };
        let server = tokio::spawn(serve(
            listener,
            Arc::new(Fixed {
                ready: true,
                metrics: Some(Ok("up 1\n# EOF\n".into())),
            }),
            config,
        ));
        // A silent client holds the only permit until it times out; the next one waits for it.
        let mut silent = TcpStream::connect(address).await.expect("connect");
        let answer = exchange(address, b"GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nup 1\n# EOF\n"), "{answer}");
        let mut timed_out = String::new();
        silent.read_to_string(&mut timed_out).await.expect("read");
        assert!(timed_out.starts_with("HTTP/1.1 408"), "{timed_out}");
        let answer = exchange(address, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("ok\n"));
        server.abort();
    }
}
