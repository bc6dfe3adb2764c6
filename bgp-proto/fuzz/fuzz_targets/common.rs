// Shared by the fuzz targets: session contexts chosen by one input octet.
use bgp_proto::{DecodeContext, EncodeContext, Family};

/// Decode and matching encode contexts from the bits of `b`: 4-octet AS, ADD-PATH for IPv4 and
/// IPv6 unicast, extended messages, eBGP.
pub fn contexts(b: u8) -> (DecodeContext, EncodeContext) {
    let mut add_path = Vec::new();
    if b & 2 != 0 {
        add_path.push(Family::IPV4_UNICAST);
    }
    if b & 4 != 0 {
        add_path.push(Family::IPV6_UNICAST);
    }
    let d = DecodeContext {
        four_octet_as: b & 1 != 0,
        extended_message: b & 8 != 0,
        add_path: add_path.clone(),
        ebgp: b & 16 != 0,
    };
    let e = EncodeContext {
        four_octet_as: b & 1 != 0,
        extended_message: b & 8 != 0,
        add_path,
    };
    (d, e)
}
