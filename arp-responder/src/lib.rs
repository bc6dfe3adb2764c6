//! L2 announcements: ARP and NDP wire types, the reply decision, leader election per service IP,
//! and AF_PACKET I/O per selected interface. Will be wired into the speaker.
