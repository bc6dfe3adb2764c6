//! The 19-octet BGP message header (RFC 4271 §4.1), framing and the header checks of §6.1.
//!
//! [`frame_len`] lets a socket driver cut a byte stream into messages without depending on tokio;
//! everything else here works on slices. No I/O.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

use bytes::BufMut;

use crate::error::{Error, Result};
use crate::iana::{HeaderErrorSubcode, MessageType};

/// Length of the header: marker (16) + length (2) + type (1).
pub const HEADER_LEN: usize = 19;
/// Largest message without the extended message capability (RFC 4271).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message with the extended message capability (RFC 8654).
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;
/// Offset of the length field in the header.
pub(crate) const LENGTH_OFFSET: usize = 16;
/// The all-ones marker.
pub const MARKER: [u8; 16] = [0xff; 16];

/// Length of the message that starts at `buf[0]`, once its header is available.
///
/// Returns `None` while fewer than 19 octets are buffered. The value is the header's length field,
/// raised to 19 if smaller, so a driver always makes progress: it reads that many octets and calls
/// [`crate::Message::decode`], which validates the length against the type and the session.
#[inline]
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    let (head, _) = buf.split_first_chunk::<HEADER_LEN>()?;
    Some(usize::from(u16::from_be_bytes([head[16], head[17]])).max(HEADER_LEN))
}

/// A validated message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Total message length including the header.
    pub length: u16,
    /// Message type.
    pub kind: MessageType,
}

impl Header {
    /// Validates the header at the start of `frame` against RFC 4271 §6.1 and `max_len`.
    ///
    /// `frame` must be exactly one message (`frame.len()` equal to its length field).
    pub fn decode(frame: &[u8], max_len: usize) -> Result<Header> {
        let Some((head, _)) = frame.split_first_chunk::<HEADER_LEN>() else {
            return Err(Error::header(
                HeaderErrorSubcode::BadMessageLength,
                (frame.len() as u16).to_be_bytes().to_vec(),
                "frame shorter than the header",
            ));
        };
        // RFC 4271 §6.1: "If at least one of the following is true: - if the Marker field of the
        // message header is not all ones ... then the Error Subcode MUST be set to Connection Not
        // Synchronized."
        if head[..16] != MARKER {
            return Err(Error::header(
                HeaderErrorSubcode::ConnectionNotSynchronized,
                Vec::new(),
                "marker is not all ones",
            ));
        }
        let length = u16::from_be_bytes([head[16], head[17]]);
        let kind = MessageType::from(head[18]);
        // RFC 4271 §6.1: "If the Length field of the message header is less than 19 or greater than
        // 4096, or if the Length field of an OPEN message is less than the minimum length of the
        // OPEN message, ... then the Error Subcode MUST be set to Bad Message Length. The Data field
        // MUST contain the erroneous Length field."
        let bad_len = |reason| {
            Err(Error::header(
                HeaderErrorSubcode::BadMessageLength,
                length.to_be_bytes().to_vec(),
                reason,
            ))
        };
        let l = usize::from(length);
        if l < HEADER_LEN || l > max_len {
            return bad_len("length outside 19..=maximum");
        }
        if l != frame.len() {
            return bad_len("length field differs from the frame size");
        }
        let ok = match kind {
            MessageType::Open => l >= 29,
            MessageType::Update => l >= 23,
            MessageType::Notification => l >= 21,
            MessageType::Keepalive => l == HEADER_LEN,
            MessageType::RouteRefresh => l >= 23,
            // RFC 4271 §6.1: "If the Type field of the message header is not recognized, then the
            // Error Subcode MUST be set to Bad Message Type. The Data field MUST contain the
            // erroneous Type field."
            MessageType::Unknown(t) => {
                return Err(Error::header(
                    HeaderErrorSubcode::BadMessageType,
                    vec![t],
                    "unknown message type",
                ));
            }
        };
        if !ok {
            return bad_len("length invalid for the message type");
        }
        Ok(Header { length, kind })
    }

    /// Writes a header with a zero length; [`patch_u16`] at [`LENGTH_OFFSET`] fills it in once the
    /// body is written.
    pub(crate) fn encode_placeholder(kind: MessageType, out: &mut impl BufMut) {
        out.put_slice(&MARKER);
        out.put_u16(0);
        out.put_u8(kind.into());
    }
}

/// Writes `v` big-endian at `at`: a length field written as a placeholder earlier.
pub(crate) fn patch_u16(buf: &mut [u8], at: usize, v: u16) -> Result<()> {
    let field = buf
        .get_mut(at..)
        .and_then(<[u8]>::first_chunk_mut::<2>)
        .ok_or(Error::Unencodable(
            "length field outside the encoded message",
        ))?;
    *field = v.to_be_bytes();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keepalive() -> Vec<u8> {
        let mut m = MARKER.to_vec();
        m.extend_from_slice(&[0, 19, 4]);
        m
    }

    #[test]
    fn frame_len_waits_for_full_header() {
        let m = keepalive();
        assert_eq!(frame_len(&m[..18]), None);
        assert_eq!(frame_len(&m), Some(19));
        let mut short = m.clone();
        short[17] = 3;
        assert_eq!(frame_len(&short), Some(19));
    }

    #[test]
    fn bad_marker_is_connection_not_synchronized() {
        let mut m = keepalive();
        m[3] = 0;
        let n = Header::decode(&m, 4096)
            .unwrap_err()
            .notification()
            .cloned()
            .unwrap();
        assert_eq!((u8::from(n.code), n.subcode), (1, 1));
    }

    #[test]
    fn keepalive_with_body_is_bad_message_length() {
        let mut m = keepalive();
        m[17] = 20;
        m.push(0);
        let n = Header::decode(&m, 4096)
            .unwrap_err()
            .notification()
            .cloned()
            .unwrap();
        assert_eq!((u8::from(n.code), n.subcode, n.data), (1, 2, vec![0, 20]));
    }

    #[test]
    fn unknown_type_is_bad_message_type() {
        let mut m = keepalive();
        m[18] = 9;
        let n = Header::decode(&m, 4096)
            .unwrap_err()
            .notification()
            .cloned()
            .unwrap();
        assert_eq!((u8::from(n.code), n.subcode, n.data), (1, 3, vec![9]));
    }
}
