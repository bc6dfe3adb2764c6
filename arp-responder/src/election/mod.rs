//! Leader election per service IP. The design (see the crate README) in one paragraph: every node
//! broadcasts an L2 heartbeat on each selected segment every 100 ms listing the IPs it answers for;
//! a peer unheard for 400 ms is dead. Among the live nodes eligible for an IP, the leader is the one
//! with the highest rendezvous hash of (node, IP), so IPs spread across nodes and only the dead
//! node's IPs move. A node answers only while (a) it hears a majority of the membership (the
//! minority side of a partition steps down after 250 ms, before the majority side takes over at
//! 400 ms), (b) its membership lease in the fencing store is valid, and (c) no live peer still
//! claims the IP (handover waits for the previous holder's heartbeat to drop the claim).
//!
//! Heartbeats count only once accepted by [`Election::on_heartbeat`]: same cluster, a valid
//! HMAC tag when a key is configured, a known sender, a fresh timestamp and a new sequence number
//! (see [`crate::wire::heartbeat`] for why), and only current members' claims count.
//!
//! Everything here is pure: time is a parameter and the only I/O is behind [`store::MembershipStore`].

pub mod eligibility;
pub mod rank;
pub mod state;
pub mod store;

pub use eligibility::{VipSpec, vip_table};
pub use rank::{hrw_score, rank_winner};
pub use state::{
    DEFAULT_MAX_CLOCK_SKEW, Election, ElectionTiming, HeartbeatAuth, MAX_PEERS, Outcome, Rejected,
    VipOutcome,
};
pub use store::{FileStore, Membership, MembershipStore, StaticStore};
