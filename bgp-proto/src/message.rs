//! The message enum, ROUTE-REFRESH (RFC 2918, RFC 7313) and the top-level decode/encode entry
//! points that dispatch on the header type.
//!
//! Pure byte conversion: a driver cuts frames with [`crate::frame_len`] and passes each one here.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

use bytes::{BufMut, BytesMut};

use crate::context::{DecodeContext, EncodeContext};
use crate::error::{Error, Result};
use crate::header::{HEADER_LEN, Header, LENGTH_OFFSET, MAX_MESSAGE_LEN, patch_u16};
use crate::iana::{Afi, Family, MessageType, RouteRefreshErrorSubcode, RouteRefreshSubtype, Safi};
use crate::notification::Notification;
use crate::open::Open;
use crate::update::{Rfc7606, Update};

/// A ROUTE-REFRESH message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// AFI.
    pub afi: Afi,
    /// Message subtype (RFC 7313): normal request, BoRR or EoRR.
    pub subtype: RouteRefreshSubtype,
    /// SAFI.
    pub safi: Safi,
    /// Anything after the 4 fixed octets of a normal request (ORF entries, RFC 5291), verbatim.
    pub orf: Vec<u8>,
}

impl RouteRefresh {
    /// A request for `family` with the given subtype.
    pub fn new(family: Family, subtype: RouteRefreshSubtype) -> Self {
        RouteRefresh {
            afi: family.afi,
            subtype,
            safi: family.safi,
            orf: Vec::new(),
        }
    }

    /// The family.
    pub fn family(&self) -> Family {
        Family::new(self.afi, self.safi)
    }

    /// Decodes a ROUTE-REFRESH body.
    pub fn decode(body: &[u8], frame: &[u8]) -> Result<RouteRefresh> {
        let Some((fixed, rest)) = body.split_first_chunk::<4>() else {
            return Err(Error::route_refresh(
                RouteRefreshErrorSubcode::InvalidMessageLength,
                frame.to_vec(),
                "ROUTE-REFRESH shorter than 4 octets",
            ));
        };
        let subtype = RouteRefreshSubtype::from(fixed[2]);
        // RFC 7313 §5: "If the length, excluding the fixed-size message header, of the received
        // ROUTE-REFRESH message with Message Subtype 1 and 2 is not 4, then the BGP speaker MUST
        // send a NOTIFICATION message with the Error Code of 'ROUTE-REFRESH Message Error' and the
        // subcode of 'Invalid Message Length'. The Data field ... MUST contain the complete
        // ROUTE-REFRESH message."
        if matches!(
            subtype,
            RouteRefreshSubtype::BeginningOfRefresh | RouteRefreshSubtype::EndOfRefresh
        ) && !rest.is_empty()
        {
            return Err(Error::route_refresh(
                RouteRefreshErrorSubcode::InvalidMessageLength,
                frame.to_vec(),
                "BoRR/EoRR longer than 4 octets",
            ));
        }
        Ok(RouteRefresh {
            afi: Afi::from(u16::from_be_bytes([fixed[0], fixed[1]])),
            subtype,
            safi: Safi::from(fixed[3]),
            orf: rest.to_vec(),
        })
    }

    fn encode_body(&self, out: &mut impl BufMut) {
        out.put_u16(self.afi.into());
        out.put_u8(self.subtype.into());
        out.put_u8(self.safi.into());
        out.put_slice(&self.orf);
    }
}

/// A BGP message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

/// A decoded message plus, for UPDATEs, the RFC 7606 outcome (always `Clean` for other types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The message.
    pub message: Message,
    /// What RFC 7606 says to do with an UPDATE that had recoverable errors.
    pub rfc7606: Rfc7606,
}

impl Message {
    /// The message type.
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Decodes one whole message (`frame` holds exactly the octets [`crate::frame_len`] reported).
    ///
    /// `Err` carries the NOTIFICATION for a session reset; recoverable UPDATE errors come back in
    /// [`Decoded::rfc7606`].
    pub fn decode(frame: &[u8], cx: &DecodeContext) -> Result<Decoded> {
        let header = Header::decode(frame, cx.max_message_len())?;
        // RFC 8654 §3: the OPEN (and KEEPALIVE) message is limited to 4096 octets whatever was
        // negotiated.
        if header.kind == MessageType::Open && frame.len() > MAX_MESSAGE_LEN {
            return Err(Error::header(
                crate::iana::HeaderErrorSubcode::BadMessageLength,
                header.length.to_be_bytes().to_vec(),
                "OPEN longer than 4096 octets",
            ));
        }
        let Some(body) = frame.get(HEADER_LEN..) else {
            return Err(Error::header(
                crate::iana::HeaderErrorSubcode::BadMessageLength,
                header.length.to_be_bytes().to_vec(),
                "frame shorter than the header",
            ));
        };
        let (message, rfc7606) = match header.kind {
            MessageType::Open => (Message::Open(Open::decode(body)?), Rfc7606::Clean),
            MessageType::Update => {
                let (u, outcome) = Update::decode(body, cx)?;
                (Message::Update(u), outcome)
            }
            MessageType::Notification => (
                Message::Notification(Notification::decode(body)?),
                Rfc7606::Clean,
            ),
            MessageType::Keepalive => (Message::Keepalive, Rfc7606::Clean),
            MessageType::RouteRefresh => (
                Message::RouteRefresh(RouteRefresh::decode(body, frame)?),
                Rfc7606::Clean,
            ),
            // Header::decode rejects unknown types.
            MessageType::Unknown(t) => {
                return Err(Error::header(
                    crate::iana::HeaderErrorSubcode::BadMessageType,
                    vec![t],
                    "unknown message type",
                ));
            }
        };
        Ok(Decoded { message, rfc7606 })
    }

    /// Appends the encoded message to `out`. On error `out` is left as it was.
    pub fn encode(&self, cx: &EncodeContext, out: &mut BytesMut) -> Result<()> {
        let start = out.len();
        let res = self.encode_inner(cx, out, start);
        if res.is_err() {
            out.truncate(start);
        }
        res
    }

    #[expect(
        clippy::arithmetic_side_effects,
        reason = "encoder: lengths of values held in memory and offsets into `out`, which only \
                  grows past `start`"
    )]
    fn encode_inner(&self, cx: &EncodeContext, out: &mut BytesMut, start: usize) -> Result<()> {
        if let Message::Update(u) = self {
            out.reserve(HEADER_LEN + u.encoded_len(cx));
        }
        Header::encode_placeholder(self.kind(), out);
        match self {
            Message::Open(o) => o.encode_body(out)?,
            Message::Update(u) => u.encode_body(cx, out)?,
            Message::Notification(n) => n.encode_body(out),
            Message::Keepalive => {}
            Message::RouteRefresh(r) => r.encode_body(out),
        }
        let len = out.len() - start;
        let max = match self {
            Message::Open(_) | Message::Keepalive => MAX_MESSAGE_LEN,
            _ => cx.max_message_len(),
        };
        if len > max {
            return Err(Error::MessageTooLong { len, max });
        }
        patch_u16(out, start + LENGTH_OFFSET, len as u16)?;
        Ok(())
    }

    /// Encodes into a fresh buffer.
    pub fn to_bytes(&self, cx: &EncodeContext) -> Result<BytesMut> {
        let mut out = BytesMut::new();
        self.encode(cx, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iana::ErrorCode;

    #[test]
    fn keepalive_and_route_refresh_round_trip() {
        let cx = EncodeContext::default();
        for m in [
            Message::Keepalive,
            Message::RouteRefresh(RouteRefresh::new(
                Family::IPV6_UNICAST,
                RouteRefreshSubtype::EndOfRefresh,
            )),
            Message::Notification(Notification::new(ErrorCode::Cease, 2)),
        ] {
            let buf = m.to_bytes(&cx).unwrap();
            let d = Message::decode(&buf, &DecodeContext::default()).unwrap();
            assert_eq!(d.message, m);
        }
        assert_eq!(Message::Keepalive.to_bytes(&cx).unwrap().len(), 19);
    }

    #[test]
    fn borr_with_extra_octets_is_route_refresh_error() {
        let mut m = Message::RouteRefresh(RouteRefresh::new(
            Family::IPV4_UNICAST,
            RouteRefreshSubtype::BeginningOfRefresh,
        ))
        .to_bytes(&EncodeContext::default())
        .unwrap()
        .to_vec();
        m.push(0);
        m[17] = 24;
        let e = Message::decode(&m, &DecodeContext::default()).unwrap_err();
        let n = e.notification().unwrap();
        assert_eq!((u8::from(n.code), n.subcode), (7, 1));
        assert_eq!(n.data, m);
    }

    #[test]
    fn oversized_update_is_rejected_and_buffer_restored() {
        use crate::attribute::{AttrValue, PathAttribute};
        let u = Update {
            attributes: vec![PathAttribute::new(AttrValue::Unknown {
                type_code: 99,
                data: vec![0; 5000],
            })],
            ..Update::default()
        };
        let mut out = BytesMut::from(&b"xy"[..]);
        let e = Message::Update(u.clone())
            .encode(&EncodeContext::default(), &mut out)
            .unwrap_err();
        assert!(matches!(e, Error::MessageTooLong { max: 4096, .. }));
        assert_eq!(&out[..], b"xy");
        let ext = EncodeContext {
            extended_message: true,
            ..Default::default()
        };
        let buf = Message::Update(u).to_bytes(&ext).unwrap();
        let dcx = DecodeContext {
            extended_message: true,
            ..Default::default()
        };
        assert!(Message::decode(&buf, &dcx).is_ok());
        assert!(Message::decode(&buf, &DecodeContext::default()).is_err());
    }
}
