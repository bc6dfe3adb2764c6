//! BGP-4 wire codec: owned message types decoded from and encoded to bytes.
//!
//! Owns OPEN/UPDATE/NOTIFICATION/KEEPALIVE/ROUTE-REFRESH, capabilities, path attributes, NLRI and the
//! mapping of malformed input to NOTIFICATION codes and RFC 7606 outcomes. No I/O: callers hand in
//! byte slices and receive owned values.
//!
//! ```
//! use bgp_proto::{DecodeContext, EncodeContext, Message, frame_len};
//! let bytes = Message::Keepalive.to_bytes(&EncodeContext::default()).unwrap();
//! let n = frame_len(&bytes).unwrap();
//! let decoded = Message::decode(&bytes[..n], &DecodeContext::default()).unwrap();
//! assert_eq!(decoded.message, Message::Keepalive);
//! ```
//!
//! Nothing here panics on input: `unwrap`, `expect` and unchecked indexing are denied outside
//! tests, and the decoder modules also deny arithmetic that could overflow.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod attribute;
pub mod capability;
pub mod context;
pub mod error;
pub mod header;
pub mod iana;
pub mod message;
pub mod nlri;
pub mod notification;
pub mod open;
pub mod update;

pub use attribute::{
    Action, Aggregator, AsPath, AttrFlags, AttrValue, AttributeError, Community, ExtendedCommunity,
    Ipv6ExtendedCommunity, LargeCommunity, MpNlri, MpReach, MpUnreach, NextHop, PathAttribute,
    Segment, merge_as4_path,
};
pub use capability::Capability;
pub use context::{DecodeContext, EncodeContext, Negotiated, negotiate};
pub use error::{DecodeError, EncodeError, Error, Result};
pub use header::{HEADER_LEN, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, frame_len};
pub use iana::{Afi, AttrType, ErrorCode, Family, Origin, Safi, SegmentType};
pub use message::{Decoded, Message, RouteRefresh};
pub use nlri::{Ipv4Nlri, Ipv4Prefix, Ipv6Nlri, Ipv6Prefix, Nlri};
pub use notification::Notification;
pub use open::{CapabilityLayout, Open};
pub use update::{Rfc7606, Update};

/// nom result over byte slices with a unit error: callers map failures to the NOTIFICATION the
/// context calls for, so parsers carry no error detail.
pub(crate) type PResult<'a, T> = nom::IResult<&'a [u8], T, ()>;
