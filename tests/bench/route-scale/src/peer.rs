//! A minimal blocking BGP speaker for the benchmark: OPEN exchange, framed reads, raw writes
//! serialised through a mutex, and a keepalive thread. I/O boundary: one TCP stream.
//! (Hold time 0 would spare the keepalives, but GoBGP derives its write deadline from the hold
//! time and fails every write with 0.)

use std::io::{BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bgp_proto::{
    Capability, DecodeContext, EncodeContext, Family, HEADER_LEN, MAX_MESSAGE_LEN, Message, Open,
};

/// Proposed hold time; keepalives go out every sixth of it (the peer may negotiate it down to
/// its own, at least 90 s for every DUT here).
const HOLD_TIME: u16 = 180;

/// Our side of a session.
pub(crate) struct Speaker {
    /// Our AS.
    pub(crate) asn: u32,
    /// Our BGP identifier.
    pub(crate) router_id: Ipv4Addr,
}

/// An established session.
pub(crate) struct Session {
    /// Buffered reader over the stream.
    pub(crate) reader: BufReader<TcpStream>,
    /// The stream for writing; hold the lock for whole messages.
    pub(crate) writer: Arc<Mutex<TcpStream>>,
    /// Decode context (4-octet AS).
    pub(crate) decode: DecodeContext,
}

/// Reads one whole message frame into `buf` (header included).
pub(crate) fn read_frame(reader: &mut impl Read, buf: &mut Vec<u8>) -> Result<()> {
    buf.resize(HEADER_LEN, 0);
    reader
        .read_exact(&mut buf[..HEADER_LEN])
        .context("read header")?;
    let len = usize::from(u16::from_be_bytes([buf[16], buf[17]]));
    if !(HEADER_LEN..=65535).contains(&len) {
        bail!("bad message length {len}");
    }
    buf.resize(len, 0);
    reader
        .read_exact(&mut buf[HEADER_LEN..])
        .context("read body")?;
    Ok(())
}

impl Speaker {
    /// Runs the OPEN/KEEPALIVE exchange on a connected stream.
    pub(crate) fn establish(&self, stream: TcpStream) -> Result<Session> {
        stream.set_nodelay(true)?;
        let encode = EncodeContext {
            four_octet_as: true,
            ..EncodeContext::default()
        };
        let decode = DecodeContext {
            four_octet_as: true,
            ebgp: true,
            ..DecodeContext::default()
        };
        let open = Open::new(
            self.asn,
            HOLD_TIME,
            self.router_id,
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::RouteRefresh,
                Capability::FourOctetAs(self.asn),
            ],
        );
        let mut writer = stream.try_clone()?;
        writer.write_all(&Message::Open(open).to_bytes(&encode)?)?;
        let mut reader = BufReader::with_capacity(1 << 20, stream);
        let mut buf = Vec::with_capacity(MAX_MESSAGE_LEN);
        let mut got_open = false;
        loop {
            read_frame(&mut reader, &mut buf)?;
            let msg = Message::decode(&buf, &DecodeContext::default())
                .map_err(|e| anyhow::anyhow!("decode during OPEN exchange: {e:?}"))?;
            match msg.message {
                Message::Open(_) => {
                    got_open = true;
                    writer.write_all(&Message::Keepalive.to_bytes(&encode)?)?;
                }
                Message::Keepalive if got_open => break,
                Message::Notification(n) => bail!("peer sent NOTIFICATION {n:?}"),
                other => bail!(
                    "unexpected message during OPEN exchange: {:?}",
                    other.kind()
                ),
            }
        }
        let writer = Arc::new(Mutex::new(writer));
        let keepalive = Message::Keepalive.to_bytes(&encode)?;
        let w = Arc::downgrade(&writer);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(u64::from(HOLD_TIME) / 6));
                let Some(w) = w.upgrade() else { return };
                let Ok(mut stream) = w.lock() else { return };
                if stream.write_all(&keepalive).is_err() {
                    return;
                }
            }
        });
        Ok(Session {
            reader,
            writer,
            decode,
        })
    }
}
