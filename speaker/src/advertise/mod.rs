//! What this node announces over BGP: the advertisement model (`bgp.advertisements`), the pure
//! computation of the desired routes per peer and family, and the Adj-RIB-Out diff that turns
//! them into the fewest UPDATE messages.
//!
//! Everything here is pure: inputs are values (node, services, allocations, peers,
//! advertisements, the previous Adj-RIB-Out), outputs are values (route sets, UPDATEs). The BGP
//! session owns the sockets and calls [`packing::updates`] with its negotiated encode context.
//!
//! The rules (kinds, traffic policies, selection, merge of overlapping advertisements) are
//! documented in [`mod@desired`]; the wire encoding choices in [`packing`].

pub mod desired;
pub mod local;
pub mod model;
pub mod packing;

pub use desired::{
    DesiredRoutes, EndpointView, FixedRoute, Inputs, NodeView, PeerFamily, PeerView, PortView,
    RouteAttributes, ServiceView, TrafficPolicy, desired,
};
pub use local::{PeerRoutes, ServiceState, local_routes};
pub use model::{Advertisement, AdvertisementKind, Attributes, Communities};
pub use packing::{
    AdjRibOut, Diff, OutRoute, Packed, adj_rib_out, diff, next_hop_self, pack, updates,
};
