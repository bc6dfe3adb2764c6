//! The BGP instance: pure per-peer logic (FSM, collisions, timers, RIBs, policy, session) and
//! the tokio driver in [`io`] that owns sockets and tasks.

pub mod collision;
pub mod fsm;
pub mod io;
pub mod policy;
pub mod rib;
pub mod session;
pub mod timers;
