//! A map from IP prefix to value, stored compactly: IPv4 prefixes as one `u64` key (address and
//! length) and IPv6 prefixes as 17 bytes, each family in its own B-tree. An `IpNet` key takes 18
//! bytes and compares through an enum; with a million routes per table the 8-byte IPv4 key saves
//! about a third of the table's memory and speeds up every lookup. Iteration is in `IpNet` order
//! (IPv4 first, then by address and length). Pure data structure.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

type V6Key = [u8; 17];

fn v4_key(net: &Ipv4Net) -> u64 {
    (u64::from(u32::from(net.addr())) << 8) | u64::from(net.prefix_len())
}

fn v4_net(key: u64) -> IpNet {
    let addr = Ipv4Addr::from((key >> 8) as u32);
    // Keys are only made from valid networks, so the length is in range.
    IpNet::V4(Ipv4Net::new(addr, (key & 0xff) as u8).unwrap_or_default())
}

fn v6_key(net: &Ipv6Net) -> V6Key {
    let mut key = [0u8; 17];
    key[..16].copy_from_slice(&net.addr().octets());
    key[16] = net.prefix_len();
    key
}

fn v6_net(key: &V6Key) -> IpNet {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&key[..16]);
    IpNet::V6(Ipv6Net::new(Ipv6Addr::from(octets), key[16]).unwrap_or_default())
}

/// Prefix → value, in prefix order.
#[derive(Debug, Clone)]
pub struct PrefixMap<V> {
    v4: BTreeMap<u64, V>,
    v6: BTreeMap<V6Key, V>,
}

impl<V> Default for PrefixMap<V> {
    fn default() -> Self {
        Self {
            v4: BTreeMap::new(),
            v6: BTreeMap::new(),
        }
    }
}

impl<V> PrefixMap<V> {
    /// Stores `value` for `prefix`; returns the previous value.
    pub fn insert(&mut self, prefix: IpNet, value: V) -> Option<V> {
        match prefix {
            IpNet::V4(n) => self.v4.insert(v4_key(&n), value),
            IpNet::V6(n) => self.v6.insert(v6_key(&n), value),
        }
    }

    /// Removes `prefix`; returns its value.
    pub fn remove(&mut self, prefix: &IpNet) -> Option<V> {
        match prefix {
            IpNet::V4(n) => self.v4.remove(&v4_key(n)),
            IpNet::V6(n) => self.v6.remove(&v6_key(n)),
        }
    }

    /// The value for `prefix`.
    pub fn get(&self, prefix: &IpNet) -> Option<&V> {
        match prefix {
            IpNet::V4(n) => self.v4.get(&v4_key(n)),
            IpNet::V6(n) => self.v6.get(&v6_key(n)),
        }
    }

    /// Whether `prefix` has a value.
    pub fn contains_key(&self, prefix: &IpNet) -> bool {
        self.get(prefix).is_some()
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Number of IPv4 prefixes.
    pub fn len_v4(&self) -> usize {
        self.v4.len()
    }

    /// Number of IPv6 prefixes.
    pub fn len_v6(&self) -> usize {
        self.v6.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.v4.clear();
        self.v6.clear();
    }

    /// Entries in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &V)> {
        self.v4
            .iter()
            .map(|(k, v)| (v4_net(*k), v))
            .chain(self.v6.iter().map(|(k, v)| (v6_net(k), v)))
    }

    /// Entries in prefix order, values mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (IpNet, &mut V)> {
        self.v4
            .iter_mut()
            .map(|(k, v)| (v4_net(*k), v))
            .chain(self.v6.iter_mut().map(|(k, v)| (v6_net(k), v)))
    }

    /// Prefixes in order.
    pub fn keys(&self) -> impl Iterator<Item = IpNet> {
        self.iter().map(|(k, _)| k)
    }

    /// Values in prefix order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.v4.values().chain(self.v6.values())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn prefix() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<u32>(), 0u8..=32)
                .prop_map(
                    |(a, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).expect("len")).trunc()
                ),
            (any::<u128>(), 0u8..=128)
                .prop_map(
                    |(a, l)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).expect("len")).trunc()
                ),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreemap_of_ipnet(ops in proptest::collection::vec((prefix(), any::<bool>(), any::<u16>()), 0..200)) {
            let mut ours = PrefixMap::default();
            let mut reference = BTreeMap::new();
            for (p, insert, v) in ops {
                if insert {
                    prop_assert_eq!(ours.insert(p, v), reference.insert(p, v));
                } else {
                    prop_assert_eq!(ours.remove(&p), reference.remove(&p));
                }
                prop_assert_eq!(ours.get(&p), reference.get(&p));
            }
            prop_assert_eq!(ours.len(), reference.len());
            let a: Vec<(IpNet, u16)> = ours.iter().map(|(k, v)| (k, *v)).collect();
            let b: Vec<(IpNet, u16)> = reference.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(a, b);
            let keys: BTreeSet<IpNet> = ours.keys().collect();
            prop_assert_eq!(keys.len(), reference.len());
        }
    }
}
