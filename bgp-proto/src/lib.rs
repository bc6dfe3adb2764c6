//! BGP-4 wire codec: owned message types decoded from and encoded to bytes.
//!
//! Owns OPEN/UPDATE/NOTIFICATION/KEEPALIVE/ROUTE-REFRESH, capabilities, path attributes, NLRI and the
//! mapping of malformed input to NOTIFICATION codes and RFC 7606 outcomes. No I/O: callers hand in
//! byte slices and receive owned values.
