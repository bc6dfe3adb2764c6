//! Rendezvous (highest random weight) ranking of nodes for an IP. The score is a fixed hash
//! (FNV-1a then the splitmix64 finaliser) so every node, on any build, ranks the same way. Pure.

use std::net::IpAddr;

/// The rendezvous score of `node` for `ip`: the node with the highest score leads the IP.
pub fn hrw_score(node: &str, ip: IpAddr) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    node.bytes().for_each(&mut eat);
    eat(0xff);
    match ip {
        IpAddr::V4(a) => a.octets().into_iter().for_each(&mut eat),
        IpAddr::V6(a) => a.octets().into_iter().for_each(&mut eat),
    }
    // splitmix64 finaliser: FNV alone clusters on similar inputs.
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The highest-scoring candidate for `ip` (ties, which need a 64-bit collision, go to the smaller
/// name).
pub fn rank_winner<'a>(
    ip: IpAddr,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates.into_iter().max_by(|a, b| {
        hrw_score(a, ip)
            .cmp(&hrw_score(b, ip))
            .then_with(|| b.cmp(a))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    #[test]
    fn winner_is_independent_of_candidate_order() {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));
        let a = rank_winner(ip, ["n1", "n2", "n3"]);
        let b = rank_winner(ip, ["n3", "n1", "n2"]);
        assert_eq!(a, b);
        assert!(a.is_some());
        assert_eq!(rank_winner(ip, []), None);
    }

    #[test]
    fn vips_spread_across_nodes() {
        let nodes = ["node-a", "node-b", "node-c"];
        let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
        for i in 0..300u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            *per_node
                .entry(rank_winner(ip, nodes).expect("winner"))
                .or_default() += 1;
        }
        assert_eq!(per_node.len(), 3);
        for (&node, &n) in &per_node {
            assert!((60..=140).contains(&n), "{node} leads {n} of 300");
        }
    }

    #[test]
    fn removing_a_node_moves_only_its_vips() {
        let all = ["node-a", "node-b", "node-c"];
        for i in 0..200u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let before = rank_winner(ip, all).expect("winner");
            let after =
                rank_winner(ip, all.into_iter().filter(|n| *n != "node-b")).expect("winner");
            if before != "node-b" {
                assert_eq!(before, after, "{ip} moved although its leader stayed");
            }
        }
    }
}
