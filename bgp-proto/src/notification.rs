//! NOTIFICATION messages (RFC 4271 §4.5) with the RFC 8203 / RFC 9003 shutdown communication
//! carried by Cease subcodes Administrative Shutdown and Administrative Reset (RFC 4486).
//!
//! Pure data and byte conversion: the caller supplies the body slice and an output buffer.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

use bytes::BufMut;

use crate::error::{Error, Result};
use crate::iana::{CeaseSubcode, ErrorCode, HeaderErrorSubcode};

/// Longest shutdown communication in octets (RFC 9003 raised RFC 8203's 128 to 255).
pub const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

/// A NOTIFICATION message: error code, subcode and data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code.
    pub code: ErrorCode,
    /// Error subcode; its meaning depends on `code` (see the `*Subcode` enums in [`crate::iana`]).
    pub subcode: u8,
    /// Diagnostic data, format depending on code and subcode.
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION with no data.
    pub fn new(code: ErrorCode, subcode: u8) -> Self {
        Notification {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// A Cease NOTIFICATION with the given subcode and no data.
    pub fn cease(subcode: CeaseSubcode) -> Self {
        Notification::new(ErrorCode::Cease, subcode.into())
    }

    /// Hold Timer Expired (code 4, subcode 0).
    pub fn hold_timer_expired() -> Self {
        Notification::new(ErrorCode::HoldTimerExpired, 0)
    }

    /// A Cease NOTIFICATION carrying a shutdown communication (RFC 9003): one length octet then
    /// up to 255 octets of UTF-8. Only Administrative Shutdown and Administrative Reset take one.
    ///
    /// A message longer than 255 octets is cut at the last UTF-8 character boundary that fits.
    pub fn shutdown(subcode: CeaseSubcode, message: &str) -> Result<Self> {
        if !matches!(
            subcode,
            CeaseSubcode::AdministrativeShutdown | CeaseSubcode::AdministrativeReset
        ) {
            return Err(Error::Unencodable(
                "shutdown communication only allowed with Administrative Shutdown or Reset",
            ));
        }
        let end = message.floor_char_boundary(MAX_SHUTDOWN_COMMUNICATION);
        let text = message.get(..end).unwrap_or_default().as_bytes();
        let mut data = Vec::with_capacity(MAX_SHUTDOWN_COMMUNICATION + 1);
        // `text` is at most 255 octets, so its length fits the length octet.
        data.push(text.len() as u8);
        data.extend_from_slice(text);
        Ok(Notification {
            code: ErrorCode::Cease,
            subcode: subcode.into(),
            data,
        })
    }

    /// The Cease subcode, if this is a Cease NOTIFICATION.
    pub fn cease_subcode(&self) -> Option<CeaseSubcode> {
        (self.code == ErrorCode::Cease).then(|| CeaseSubcode::from(self.subcode))
    }

    /// The shutdown communication of an Administrative Shutdown/Reset, if it carries a valid one.
    ///
    /// RFC 9003 §2: "If the Shutdown Communication is malformed (e.g., the length is longer than
    /// the remaining data or the data is not valid UTF-8), then ... the receiver MAY log the raw
    /// octets": such messages give `None`; [`Notification::data`] still holds the bytes.
    pub fn shutdown_communication(&self) -> Option<&str> {
        match self.cease_subcode()? {
            CeaseSubcode::AdministrativeShutdown | CeaseSubcode::AdministrativeReset => {}
            _ => return None,
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        core::str::from_utf8(text).ok()
    }

    /// Decodes a NOTIFICATION body (everything after the 19-octet header).
    pub fn decode(body: &[u8]) -> Result<Self> {
        match body {
            [code, subcode, data @ ..] => Ok(Notification {
                code: ErrorCode::from(*code),
                subcode: *subcode,
                data: data.to_vec(),
            }),
            _ => Err(Error::header(
                HeaderErrorSubcode::BadMessageLength,
                // The body is 0 or 1 octets here: the message was 19 or 20 octets long.
                body.first().map_or(19u16, |_| 20).to_be_bytes().to_vec(),
                "NOTIFICATION shorter than 21 octets",
            )),
        }
    }

    /// Appends the body (code, subcode, data) to `out`.
    pub fn encode_body(&self, out: &mut impl BufMut) {
        out.put_u8(self.code.into());
        out.put_u8(self.subcode);
        out.put_slice(&self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_communication_round_trips() {
        let n =
            Notification::shutdown(CeaseSubcode::AdministrativeShutdown, "maintenance").unwrap();
        assert_eq!(n.data[0], 11);
        assert_eq!(n.shutdown_communication(), Some("maintenance"));
        let mut buf = Vec::new();
        n.encode_body(&mut buf);
        assert_eq!(Notification::decode(&buf).unwrap(), n);
    }

    #[test]
    fn shutdown_communication_truncates_on_char_boundary() {
        let long = "é".repeat(200); // 400 octets
        let n = Notification::shutdown(CeaseSubcode::AdministrativeReset, &long).unwrap();
        assert_eq!(n.data[0], 254);
        assert_eq!(n.shutdown_communication().map(str::len), Some(254));
    }

    #[test]
    fn shutdown_communication_rejects_overrun_and_bad_utf8() {
        let mut n = Notification::cease(CeaseSubcode::AdministrativeShutdown);
        n.data = vec![5, b'a'];
        assert_eq!(n.shutdown_communication(), None);
        n.data = vec![2, 0xff, 0xfe];
        assert_eq!(n.shutdown_communication(), None);
        assert!(Notification::shutdown(CeaseSubcode::PeerDeconfigured, "x").is_err());
    }

    #[test]
    fn short_notification_is_bad_message_length() {
        let err = Notification::decode(&[6]).unwrap_err();
        let n = err.notification().unwrap();
        assert_eq!((n.code, n.subcode), (ErrorCode::MessageHeader, 2));
        assert_eq!(n.data, vec![0, 20]);
    }
}
