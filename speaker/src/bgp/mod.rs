//! The BGP instance: pure per-peer logic (FSM, collisions, timers, RIBs, policy, session) and
//! the tokio driver in [`io`] that owns sockets and tasks.

pub mod collision;
pub mod fsm;
pub mod io;
pub mod loc_rib;
pub mod prefix_map;
pub mod rib;
pub mod rib_out;
pub mod route_rows;
pub mod session;
pub mod timers;
