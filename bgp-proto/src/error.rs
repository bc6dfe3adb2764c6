//! The crate's error type.
//!
//! Decoding errors that call for a session reset carry the exact NOTIFICATION to send (RFC 4271 §6);
//! UPDATE attribute errors that RFC 7606 resolves without a reset are not errors but values (see
//! [`crate::update::Rfc7606`]). Pure data: no I/O.

use crate::iana::{
    ErrorCode, HeaderErrorSubcode, OpenErrorSubcode, RouteRefreshErrorSubcode, UpdateErrorSubcode,
};
use crate::notification::Notification;

/// Everything that can go wrong while decoding or encoding a BGP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input is malformed and the session must be reset with `notification`.
    #[error("malformed BGP message ({reason}); reset with NOTIFICATION {code}/{subcode}",
        code = u8::from(notification.code), subcode = notification.subcode)]
    Malformed {
        /// The NOTIFICATION to send to the peer before closing the session.
        notification: Notification,
        /// What was wrong, for logs.
        reason: &'static str,
    },
    /// The encoded message would exceed the maximum message size of the session.
    #[error("encoded message is {len} octets, more than the {max} allowed")]
    MessageTooLong {
        /// Length the message would have had.
        len: usize,
        /// Largest length allowed by the encode context.
        max: usize,
    },
    /// A value cannot be represented on the wire (for example a field that overflows its width).
    #[error("cannot encode: {0}")]
    Unencodable(&'static str),
    /// The requested feature is not implemented by this crate.
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
}

/// Error returned by decoders; an alias kept for readability at call sites.
pub type DecodeError = Error;
/// Error returned by encoders; an alias kept for readability at call sites.
pub type EncodeError = Error;
/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// The NOTIFICATION to send for a session-reset error, if this is one.
    pub fn notification(&self) -> Option<&Notification> {
        match self {
            Error::Malformed { notification, .. } => Some(notification),
            _ => None,
        }
    }

    pub(crate) fn malformed(
        code: ErrorCode,
        subcode: u8,
        data: Vec<u8>,
        reason: &'static str,
    ) -> Self {
        Error::Malformed {
            notification: Notification {
                code,
                subcode,
                data,
            },
            reason,
        }
    }

    pub(crate) fn header(sub: HeaderErrorSubcode, data: Vec<u8>, reason: &'static str) -> Self {
        Self::malformed(ErrorCode::MessageHeader, sub.into(), data, reason)
    }

    pub(crate) fn open(sub: OpenErrorSubcode, data: Vec<u8>, reason: &'static str) -> Self {
        Self::malformed(ErrorCode::Open, sub.into(), data, reason)
    }

    pub(crate) fn update(sub: UpdateErrorSubcode, data: Vec<u8>, reason: &'static str) -> Self {
        Self::malformed(ErrorCode::Update, sub.into(), data, reason)
    }

    pub(crate) fn route_refresh(
        sub: RouteRefreshErrorSubcode,
        data: Vec<u8>,
        reason: &'static str,
    ) -> Self {
        Self::malformed(ErrorCode::RouteRefresh, sub.into(), data, reason)
    }
}
