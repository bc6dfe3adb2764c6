//! Framing of BGP messages on a TCP stream: a reader task that cuts the byte stream with
//! `bgp_proto::frame_len`, decodes each frame with the session's current decode context and
//! forwards the result; a writer task that writes pre-encoded messages from a queue bounded in
//! bytes, gives up on a peer that stops reading (RFC 9687 send hold timer) and closes the stream.
//!
//! I/O boundary: the two halves of one `TcpStream`. Decoding rules live in bgp-proto.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bgp_proto::{DecodeContext, Decoded, Error as ProtoError, frame_len};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};

/// What a reader reports for one connection.
#[derive(Debug)]
pub enum ReadEvent {
    /// A message decoded cleanly or with RFC 7606 outcomes.
    Message(Decoded),
    /// A message the codec rejected; the session must be reset with its NOTIFICATION.
    Malformed(ProtoError),
    /// The peer closed the connection or it failed.
    Closed(Option<std::io::Error>),
}

/// What the writer is told to do.
#[derive(Debug)]
pub enum WriteCommand {
    /// Write these bytes (one or more whole messages).
    Send(Bytes),
    /// Flush and shut the stream down.
    Close,
}

/// Reads messages until the stream ends or a message is malformed, sending each to `events`
/// tagged with `conn`. `context` is read for every frame, so a session's negotiated context
/// applies from the first message after the OPEN exchange.
pub async fn read_loop<T: From<(u64, ReadEvent)> + Send + 'static>(
    conn: u64,
    mut stream: OwnedReadHalf,
    context: watch::Receiver<DecodeContext>,
    events: mpsc::Sender<T>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        // Decode every whole frame in the buffer.
        while let Some(len) = frame_len(&buf) {
            if buf.len() < len {
                break;
            }
            let frame = buf.split_to(len);
            let decoded = {
                let cx = context.borrow();
                bgp_proto::Message::decode(&frame, &cx)
            };
            let (event, stop) = match decoded {
                Ok(d) => (ReadEvent::Message(d), false),
                Err(e) => (ReadEvent::Malformed(e), true),
            };
            if events.send(T::from((conn, event))).await.is_err() || stop {
                return;
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) => {
                let _ = events.send(T::from((conn, ReadEvent::Closed(None)))).await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = events
                    .send(T::from((conn, ReadEvent::Closed(Some(e)))))
                    .await;
                return;
            }
        }
    }
}

/// Bytes gathered from queued messages before one write.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Bytes one connection may have queued for its writer: past this the peer is not keeping up
/// and the session is torn down instead of buffering without bound. Large enough for the
/// initial advertisement of a full route-server table.
pub const OUTBOUND_LIMIT_BYTES: usize = 128 << 20;

/// Error code 8, Send Hold Timer Expired (RFC 9687 §5; not in bgp-proto's table yet).
pub const SEND_HOLD_TIMER_EXPIRED: u8 = 8;

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The connection's queue holds its limit already.
    Full,
    /// The writer has ended.
    Closed,
}

/// The sending end of one connection's bounded outbound queue (bounded in bytes).
#[derive(Debug)]
pub struct Outbound {
    tx: mpsc::UnboundedSender<WriteCommand>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The writer's end of the queue.
#[derive(Debug)]
pub struct OutboundRx {
    rx: mpsc::UnboundedReceiver<WriteCommand>,
    queued: Arc<AtomicUsize>,
}

/// A queue that refuses messages once `limit` bytes wait.
pub fn outbound(limit: usize) -> (Outbound, OutboundRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Outbound {
            tx,
            queued: queued.clone(),
            limit,
        },
        OutboundRx { rx, queued },
    )
}

impl Outbound {
    /// Queues whole messages; refuses them when the queue would pass its limit.
    pub fn send(&self, bytes: Bytes) -> Result<(), QueueError> {
        let len = bytes.len();
        let queued = self.queued.load(Ordering::Relaxed);
        if queued + len > self.limit {
            return Err(QueueError::Full);
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.tx.send(WriteCommand::Send(bytes)).map_err(|_| {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            QueueError::Closed
        })
    }

    /// Asks the writer to flush what is queued and shut the stream down.
    pub fn close(&self) {
        let _ = self.tx.send(WriteCommand::Close);
    }

    /// Bytes waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

impl OutboundRx {
    /// The next queued message; `None` once the queue is closed or told to close.
    pub async fn recv(&mut self) -> Option<Bytes> {
        match self.rx.recv().await? {
            WriteCommand::Send(bytes) => {
                self.queued.fetch_sub(bytes.len(), Ordering::Relaxed);
                Some(bytes)
            }
            WriteCommand::Close => None,
        }
    }

    /// A message already queued, without waiting; `None` when there is none or the queue is
    /// closing (the next [`OutboundRx::recv`] then says which).
    pub fn try_recv(&mut self) -> Option<Bytes> {
        match self.rx.try_recv().ok()? {
            WriteCommand::Send(bytes) => {
                self.queued.fetch_sub(bytes.len(), Ordering::Relaxed);
                Some(bytes)
            }
            WriteCommand::Close => {
                self.rx.close();
                None
            }
        }
    }
}

/// How a writer ended, when the owner must act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteEnd {
    /// The peer accepted none of our bytes for the send hold time (RFC 9687).
    SendHoldExpired,
}

/// Writes what it is given until told to close (or the channel closes), then shuts down.
/// Gives up when the peer takes none of our bytes for `send_hold`: sends it a NOTIFICATION
/// Send Hold Timer Expired if the socket has room, reports [`WriteEnd::SendHoldExpired`] to
/// `events` and ends, so neither the task nor its queue outlives a peer that stopped reading.
pub async fn write_loop<T: From<(u64, WriteEnd)> + Send + 'static>(
    conn: u64,
    mut stream: OwnedWriteHalf,
    mut commands: OutboundRx,
    send_hold: Duration,
    events: mpsc::Sender<T>,
) {
    let mut batch = Vec::new();
    let mut closing = false;
    while !closing && let Some(first) = commands.rx.recv().await {
        // Messages already queued go out in the same write: one syscall for a burst.
        batch.clear();
        let mut next = Some(first);
        while let Some(command) = next {
            match command {
                WriteCommand::Send(bytes) => {
                    commands.queued.fetch_sub(bytes.len(), Ordering::Relaxed);
                    batch.extend_from_slice(&bytes);
                }
                WriteCommand::Close => {
                    closing = true;
                    break;
                }
            }
            next = if batch.len() < WRITE_BATCH_BYTES {
                commands.rx.try_recv().ok()
            } else {
                None
            };
        }
        let mut written = 0;
        while let Some(rest) = batch.get(written..).filter(|r| !r.is_empty()) {
            // RFC 9687 §4 (paraphrased): the SendHoldTimer runs while we have data to send and
            // is restarted whenever the peer takes some; `write` returns on any progress.
            match tokio::time::timeout(send_hold, stream.write(rest)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => written += n,
                Err(_) => {
                    // RFC 9687 §5 (paraphrased): on SendHoldTimer_Expires the local system
                    // sends a NOTIFICATION with the Send Hold Timer Expired error code, if it
                    // can, and closes the TCP connection; nothing waits for the peer here.
                    let _ = stream.try_write(&send_hold_notification());
                    let _ = events
                        .send(T::from((conn, WriteEnd::SendHoldExpired)))
                        .await;
                    return;
                }
            }
        }
    }
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

/// A NOTIFICATION "Send Hold Timer Expired" (code 8, subcode 0) on the wire.
fn send_hold_notification() -> Vec<u8> {
    let mut bytes = vec![0xff; 16];
    bytes.extend_from_slice(&21u16.to_be_bytes());
    bytes.push(3); // NOTIFICATION
    bytes.push(SEND_HOLD_TIMER_EXPIRED);
    bytes.push(0);
    bytes
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn queue_refuses_messages_past_its_limit() {
        let (tx, _rx) = outbound(10);
        assert_eq!(tx.send(Bytes::from_static(&[0; 6])), Ok(()));
        assert_eq!(tx.send(Bytes::from_static(&[0; 6])), Err(QueueError::Full));
        assert_eq!(tx.queued(), 6);
        assert_eq!(tx.send(Bytes::from_static(&[0; 4])), Ok(()));
    }

    #[test]
    fn send_hold_notification_is_a_well_formed_code_8() {
        let bytes = send_hold_notification();
        let decoded = bgp_proto::Message::decode(&bytes, &DecodeContext::default());
        match decoded.map(|d| d.message) {
            Ok(bgp_proto::Message::Notification(n)) => {
                assert_eq!(u8::from(n.code), SEND_HOLD_TIMER_EXPIRED);
                assert_eq!(n.subcode, 0);
            }
            other => panic!("not a NOTIFICATION: {other:?}"),
        }
    }

    /// A peer that never reads: the writer gives up after the send hold time and ends.
    #[tokio::test]
    async fn writer_ends_when_the_peer_stops_reading() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (_server, _) = listener.accept().await.expect("accept");
        let (_read, write) = client.into_split();
        let (tx, rx) = outbound(usize::MAX);
        let (events_tx, mut events_rx) = mpsc::channel::<(u64, WriteEnd)>(4);
        let started = Instant::now();
        let task = tokio::spawn(write_loop(
            7,
            write,
            rx,
            Duration::from_millis(500),
            events_tx,
        ));
        // Far more than the socket buffers hold.
        for _ in 0..256 {
            tx.send(Bytes::from(vec![0u8; 64 * 1024])).expect("queued");
        }
        let event = tokio::time::timeout(Duration::from_secs(20), events_rx.recv())
            .await
            .expect("writer reported in time");
        assert_eq!(event, Some((7, WriteEnd::SendHoldExpired)));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("writer task ended")
            .expect("no panic");
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(tx.send(Bytes::from_static(&[0])), Err(QueueError::Closed));
    }
}
