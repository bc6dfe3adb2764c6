//! IANA code points used on the BGP wire, as open enums.
//!
//! Every enum here has an `Unknown(n)` variant so that a value we do not know survives a
//! decode/encode round trip unchanged. Pure data: no I/O.

/// Declares an open enum over an integer type with `From` conversions both ways.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident($repr:ty) {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A code point this crate does not know; kept so it re-encodes unchanged.
            Unknown($repr),
        }

        impl From<$repr> for $name {
            #[inline]
            fn from(value: $repr) -> Self {
                match value {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $repr {
            #[inline]
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

open_enum! {
    /// BGP message type (RFC 4271 §4.1, RFC 2918).
    pub enum MessageType(u8) {
        /// OPEN.
        Open = 1,
        /// UPDATE.
        Update = 2,
        /// NOTIFICATION.
        Notification = 3,
        /// KEEPALIVE.
        Keepalive = 4,
        /// ROUTE-REFRESH (RFC 2918).
        RouteRefresh = 5,
    }
}

open_enum! {
    /// Address family identifier.
    pub enum Afi(u16) {
        /// IPv4.
        Ipv4 = 1,
        /// IPv6.
        Ipv6 = 2,
        /// Layer-2 VPN (EVPN, VPLS).
        L2vpn = 25,
    }
}

open_enum! {
    /// Subsequent address family identifier.
    pub enum Safi(u8) {
        /// Unicast forwarding.
        Unicast = 1,
        /// Multicast forwarding.
        Multicast = 2,
        /// Labeled unicast (RFC 8277).
        Labeled = 4,
        /// EVPN (RFC 7432).
        Evpn = 70,
        /// MPLS-labeled VPN (RFC 4364).
        MplsVpn = 128,
        /// Flow specification (RFC 8955).
        FlowSpec = 133,
    }
}

open_enum! {
    /// Capability code (RFC 5492 registry).
    pub enum CapabilityCode(u8) {
        /// Multiprotocol extensions (RFC 4760).
        Multiprotocol = 1,
        /// Route refresh (RFC 2918).
        RouteRefresh = 2,
        /// Extended next hop encoding (RFC 8950).
        ExtendedNextHop = 5,
        /// Extended message (RFC 8654).
        ExtendedMessage = 6,
        /// Graceful restart (RFC 4724).
        GracefulRestart = 64,
        /// 4-octet AS numbers (RFC 6793).
        FourOctetAs = 65,
        /// ADD-PATH (RFC 7911).
        AddPath = 69,
        /// Enhanced route refresh (RFC 7313).
        EnhancedRouteRefresh = 70,
        /// Long-lived graceful restart (RFC 9494).
        LongLivedGracefulRestart = 71,
        /// FQDN / hostname (draft-walton-bgp-hostname-capability).
        Fqdn = 73,
    }
}

open_enum! {
    /// Path attribute type code.
    pub enum AttrType(u8) {
        /// ORIGIN (RFC 4271).
        Origin = 1,
        /// AS_PATH (RFC 4271).
        AsPath = 2,
        /// NEXT_HOP (RFC 4271).
        NextHop = 3,
        /// MULTI_EXIT_DISC (RFC 4271).
        MultiExitDisc = 4,
        /// LOCAL_PREF (RFC 4271).
        LocalPref = 5,
        /// ATOMIC_AGGREGATE (RFC 4271).
        AtomicAggregate = 6,
        /// AGGREGATOR (RFC 4271, RFC 6793).
        Aggregator = 7,
        /// COMMUNITIES (RFC 1997).
        Communities = 8,
        /// ORIGINATOR_ID (RFC 4456).
        OriginatorId = 9,
        /// CLUSTER_LIST (RFC 4456).
        ClusterList = 10,
        /// MP_REACH_NLRI (RFC 4760).
        MpReachNlri = 14,
        /// MP_UNREACH_NLRI (RFC 4760).
        MpUnreachNlri = 15,
        /// EXTENDED_COMMUNITIES (RFC 4360).
        ExtendedCommunities = 16,
        /// AS4_PATH (RFC 6793).
        As4Path = 17,
        /// AS4_AGGREGATOR (RFC 6793).
        As4Aggregator = 18,
        /// IPv6 address specific extended communities (RFC 5701).
        Ipv6ExtendedCommunities = 25,
        /// LARGE_COMMUNITY (RFC 8092).
        LargeCommunities = 32,
    }
}

open_enum! {
    /// NOTIFICATION error code (RFC 4271 §4.5 and later).
    pub enum ErrorCode(u8) {
        /// Message Header Error.
        MessageHeader = 1,
        /// OPEN Message Error.
        Open = 2,
        /// UPDATE Message Error.
        Update = 3,
        /// Hold Timer Expired.
        HoldTimerExpired = 4,
        /// Finite State Machine Error.
        Fsm = 5,
        /// Cease (RFC 4486).
        Cease = 6,
        /// ROUTE-REFRESH Message Error (RFC 7313).
        RouteRefresh = 7,
    }
}

open_enum! {
    /// Message Header Error subcodes (RFC 4271 §6.1).
    pub enum HeaderErrorSubcode(u8) {
        /// Unspecific.
        Unspecific = 0,
        /// Connection Not Synchronized.
        ConnectionNotSynchronized = 1,
        /// Bad Message Length.
        BadMessageLength = 2,
        /// Bad Message Type.
        BadMessageType = 3,
    }
}

open_enum! {
    /// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492).
    pub enum OpenErrorSubcode(u8) {
        /// Unspecific.
        Unspecific = 0,
        /// Unsupported Version Number.
        UnsupportedVersion = 1,
        /// Bad Peer AS.
        BadPeerAs = 2,
        /// Bad BGP Identifier.
        BadBgpIdentifier = 3,
        /// Unsupported Optional Parameter.
        UnsupportedOptionalParameter = 4,
        /// Unacceptable Hold Time.
        UnacceptableHoldTime = 6,
        /// Unsupported Capability (RFC 5492).
        UnsupportedCapability = 7,
        /// Role Mismatch (RFC 9234).
        RoleMismatch = 11,
    }
}

open_enum! {
    /// UPDATE Message Error subcodes (RFC 4271 §6.3).
    pub enum UpdateErrorSubcode(u8) {
        /// Unspecific.
        Unspecific = 0,
        /// Malformed Attribute List.
        MalformedAttributeList = 1,
        /// Unrecognized Well-known Attribute.
        UnrecognizedWellKnownAttribute = 2,
        /// Missing Well-known Attribute.
        MissingWellKnownAttribute = 3,
        /// Attribute Flags Error.
        AttributeFlagsError = 4,
        /// Attribute Length Error.
        AttributeLengthError = 5,
        /// Invalid ORIGIN Attribute.
        InvalidOrigin = 6,
        /// Invalid NEXT_HOP Attribute.
        InvalidNextHop = 8,
        /// Optional Attribute Error.
        OptionalAttributeError = 9,
        /// Invalid Network Field.
        InvalidNetworkField = 10,
        /// Malformed AS_PATH.
        MalformedAsPath = 11,
    }
}

open_enum! {
    /// Cease subcodes (RFC 4486, RFC 8203, RFC 9003).
    pub enum CeaseSubcode(u8) {
        /// Maximum Number of Prefixes Reached.
        MaxPrefixes = 1,
        /// Administrative Shutdown (may carry a shutdown communication).
        AdministrativeShutdown = 2,
        /// Peer De-configured.
        PeerDeconfigured = 3,
        /// Administrative Reset (may carry a shutdown communication).
        AdministrativeReset = 4,
        /// Connection Rejected.
        ConnectionRejected = 5,
        /// Other Configuration Change.
        OtherConfigurationChange = 6,
        /// Connection Collision Resolution.
        ConnectionCollisionResolution = 7,
        /// Out of Resources.
        OutOfResources = 8,
        /// Hard Reset (RFC 8538).
        HardReset = 9,
        /// BFD Down (RFC 9384).
        BfdDown = 10,
    }
}

open_enum! {
    /// ROUTE-REFRESH Message Error subcodes (RFC 7313).
    pub enum RouteRefreshErrorSubcode(u8) {
        /// Reserved.
        Reserved = 0,
        /// Invalid Message Length.
        InvalidMessageLength = 1,
    }
}

open_enum! {
    /// ROUTE-REFRESH message subtype (RFC 7313, carried in the former reserved octet).
    pub enum RouteRefreshSubtype(u8) {
        /// A normal route refresh request (RFC 2918).
        Normal = 0,
        /// Beginning of Route Refresh.
        BeginningOfRefresh = 1,
        /// End of Route Refresh.
        EndOfRefresh = 2,
    }
}

open_enum! {
    /// OPEN optional parameter type (RFC 4271, RFC 5492, RFC 9072).
    pub enum OptParamType(u8) {
        /// Capabilities (RFC 5492).
        Capabilities = 2,
        /// Extended optional parameters length marker (RFC 9072).
        ExtendedLength = 255,
    }
}

open_enum! {
    /// ORIGIN attribute value (RFC 4271 §5.1.1).
    pub enum Origin(u8) {
        /// Learned from an interior gateway protocol.
        Igp = 0,
        /// Learned from EGP.
        Egp = 1,
        /// Learned some other way.
        Incomplete = 2,
    }
}

open_enum! {
    /// AS_PATH segment type (RFC 4271, RFC 5065).
    pub enum SegmentType(u8) {
        /// Unordered set of ASes.
        AsSet = 1,
        /// Ordered sequence of ASes.
        AsSequence = 2,
        /// Confederation sequence (RFC 5065).
        ConfedSequence = 3,
        /// Confederation set (RFC 5065).
        ConfedSet = 4,
    }
}

/// The AS number that stands in for a 4-octet AS on 2-octet sessions (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// An address family: AFI plus SAFI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    /// Address family identifier.
    pub afi: Afi,
    /// Subsequent address family identifier.
    pub safi: Safi,
}

impl Family {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: Family = Family {
        afi: Afi::Ipv4,
        safi: Safi::Unicast,
    };
    /// IPv6 unicast.
    pub const IPV6_UNICAST: Family = Family {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
    };

    /// A family from its parts.
    pub const fn new(afi: Afi, safi: Safi) -> Self {
        Family { afi, safi }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_code_points_round_trip() {
        assert_eq!(AttrType::from(200), AttrType::Unknown(200));
        assert_eq!(u8::from(AttrType::Unknown(200)), 200);
        assert_eq!(u8::from(AttrType::LargeCommunities), 32);
        assert_eq!(Afi::from(2), Afi::Ipv6);
        assert_eq!(CeaseSubcode::from(2), CeaseSubcode::AdministrativeShutdown);
    }
}
