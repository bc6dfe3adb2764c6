//! Framing of BGP messages on a TCP stream: a reader task that cuts the byte stream with
//! `bgp_proto::frame_len`, decodes each frame with the session's current decode context and
//! forwards the result; a writer task that writes pre-encoded messages and closes the stream.
//!
//! I/O boundary: the two halves of one `TcpStream`. Decoding rules live in bgp-proto.

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

/// Writes what it is given until told to close (or the channel closes), then shuts down.
pub async fn write_loop(
    mut stream: OwnedWriteHalf,
    mut commands: mpsc::UnboundedReceiver<WriteCommand>,
) {
    let mut batch = Vec::new();
    let mut closing = false;
    while !closing && let Some(first) = commands.recv().await {
        // Messages already queued go out in the same write: one syscall for a burst.
        batch.clear();
        let mut next = Some(first);
        while let Some(command) = next {
            match command {
                WriteCommand::Send(bytes) => batch.extend_from_slice(&bytes),
                WriteCommand::Close => {
                    closing = true;
                    break;
                }
            }
            next = if batch.len() < WRITE_BATCH_BYTES {
                commands.try_recv().ok()
            } else {
                None
            };
        }
        if !batch.is_empty() && stream.write_all(&batch).await.is_err() {
            return;
        }
    }
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}
