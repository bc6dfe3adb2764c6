//! Shared fixtures for Herald's end-to-end tests: network namespaces, veth links and real BGP
//! daemons (BIRD 2, FRR, GoBGP, ExaBGP), each cleaned up on drop even when a test fails.
