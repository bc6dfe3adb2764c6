//! The allocator: which service holds which LoadBalancer addresses. Pure and deterministic — no
//! I/O, no clocks, no randomness; the same inputs in the same order give the same state.
//!
//! Rules, in the order they are applied to a service:
//! 1. An address it already holds is kept while it is of a wanted family, matches its explicit
//!    requests, lies in some pool (enabled, disabled or conflicting) whose selectors select the
//!    service, and is still compatible with the services it is shared with.
//! 2. An address that stops lying in a selecting pool (pool edit, label change) is released and
//!    remembered as *lost*: the service is reported unsatisfied and gets no other address until
//!    the lost one comes back into a pool or the service explicitly asks for other addresses
//!    (requested IPs or pool). Addresses are never moved silently.
//! 3. Missing families are filled from the requested IPs, else from the lowest free address of
//!    the first matching pool (priority, then name), joining an existing shared address first
//!    when the service has a sharing key.
//! 4. A service that does not get everything it needs is reported with the reason of the
//!    **first family, in its `ipFamilies` order, that fails against the current state** (a
//!    `RequireDualStack` service whose first family has a free address but whose second has no
//!    pool reports the second; once the first family's pool fills up, it reports the first).
//!
//! The outcome of an unsatisfied service is kept current, so that it is a function of pools,
//! requests and allocations only (and [`Allocator::rebuild`] reports the same): it is
//! recomputed when the pools or its request change; when any address is freed, re-keyed or
//! becomes joinable, or a holder's sharing key, allowed namespaces or ports change (every
//! waiting service is retried); and when an address it found free but did not take (a
//! `RequireDualStack` service missing its other family) is claimed by another service. Nothing
//! else can change it: claiming an address only removes options, and a family that fails keeps
//! failing for the same reason until one of those events.
//!
//! Used addresses live in an ordered map and an `IntervalSet`, so memory is proportional to
//! allocations and a /64 pool costs no more than a /24.

use std::collections::{BTreeMap, BTreeSet};

use std::fmt;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::intervals::IntervalSet;
use crate::pool::{AddrRange, IpFamily, Pool, addr_key, key_addr, key_family};
use crate::request::{Families, FamilyPolicy, Request, ServiceKey};

/// Why a service does not have all the addresses it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsatisfied {
    /// No enabled, non-conflicting pool selects the service for this family.
    NoMatchingPool {
        /// The family that could not be served.
        family: IpFamily,
    },
    /// Matching pools exist but have no free address of this family.
    PoolExhausted {
        /// The family that could not be served.
        family: IpFamily,
    },
    /// A requested address is not in any enabled, non-conflicting pool selecting the service.
    RequestedIpNotInPool {
        /// The requested address.
        ip: IpAddr,
    },
    /// A requested address is held by a service that does not share with this one.
    RequestedIpTaken {
        /// The requested address.
        ip: IpAddr,
        /// One service holding it.
        by: ServiceKey,
    },
    /// An address could be shared by sharing key, but ports or namespaces conflict.
    SharingConflict {
        /// The address.
        ip: IpAddr,
        /// The service it conflicts with.
        with: ServiceKey,
    },
    /// Addresses the service held left every pool selecting it (or were claimed by another
    /// service in a restored state); the service is not moved to new ones.
    AddressLost {
        /// The lost addresses.
        ips: Vec<IpAddr>,
    },
    /// The service's request is malformed (bad annotation, family mismatch, ...).
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },
}

impl Unsatisfied {
    /// A CamelCase reason, for Kubernetes conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoMatchingPool { .. } => "NoMatchingPool",
            Self::PoolExhausted { .. } => "PoolExhausted",
            Self::RequestedIpNotInPool { .. } => "RequestedIPNotInPool",
            Self::RequestedIpTaken { .. } => "RequestedIPTaken",
            Self::SharingConflict { .. } => "SharingConflict",
            Self::AddressLost { .. } => "AddressLost",
            Self::InvalidRequest { .. } => "InvalidRequest",
        }
    }
}

impl fmt::Display for Unsatisfied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoMatchingPool { family } => write!(f, "no {family} pool selects this service"),
            Self::PoolExhausted { family } => {
                write!(f, "every matching {family} pool is exhausted")
            }
            Self::RequestedIpNotInPool { ip } => {
                write!(
                    f,
                    "requested address {ip} is not in an enabled pool that selects this service"
                )
            }
            Self::RequestedIpTaken { ip, by } => {
                write!(f, "requested address {ip} is taken by {by}")
            }
            Self::SharingConflict { ip, with } => write!(
                f,
                "address {ip} cannot be shared with {with}: port or namespace conflict"
            ),
            Self::AddressLost { ips } => {
                f.write_str("allocated address")?;
                for ip in ips {
                    write!(f, " {ip}")?;
                }
                f.write_str(
                    " left every pool selecting this service; not reassigning (request addresses or a pool to move)",
                )
            }
            Self::InvalidRequest { reason } => write!(f, "invalid request: {reason}"),
        }
    }
}

/// The result of allocation for one service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Outcome {
    /// The service has what it asked for.
    #[default]
    Satisfied,
    /// It does not, and why.
    Unsatisfied(Unsatisfied),
}

/// What a service holds, for persistence and for restoring.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Held {
    /// Addresses allocated to the service.
    pub addresses: Vec<IpAddr>,
    /// Addresses it lost and is waiting for (see the module header).
    pub lost: Vec<IpAddr>,
}

/// A read-only view of one service's allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView<'a> {
    /// The service.
    pub key: &'a ServiceKey,
    /// Its addresses, in wanted-family order.
    pub addresses: Vec<IpAddr>,
    /// Addresses it lost.
    pub lost: Vec<IpAddr>,
    /// Satisfied, or why not.
    pub outcome: &'a Outcome,
}

/// Per-pool counts and conflict state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStatus {
    /// Pool name.
    pub name: String,
    /// Allocatable addresses (saturating at `u128::MAX`).
    pub total: u128,
    /// Addresses in use (a shared address counts once).
    pub used: u128,
    /// `total - used`.
    pub available: u128,
    /// The pool is disabled (keeps allocations, makes none).
    pub disabled: bool,
    /// The earlier pool this one overlaps; a conflicting pool allocates nothing.
    pub conflicts_with: Option<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    request: Request,
    addresses: Addrs,
    lost: Vec<u128>,
    invalid: Option<String>,
    outcome: Outcome,
}

/// Internal service id: the service's slot in [`Services`]. Never leaves the allocator; ids of
/// removed services are reused.
type Sid = u32;

/// Services in a slab indexed by [`Sid`], with a hash index from key to id that stores the hash
/// next to the id (growing the index never re-reads the keys). Keys are not duplicated: the index
/// compares against the key inside the slot's request.
#[derive(Debug, Clone, Default)]
struct Services {
    slots: Vec<Option<Entry>>,
    free: Vec<Sid>,
    index: HashTable<(u64, Sid)>,
    hasher: DefaultHashBuilder,
}

impl Services {
    fn hash(&self, key: &ServiceKey) -> u64 {
        self.hasher.hash_one(key)
    }

    fn id_of(&self, key: &ServiceKey) -> Option<Sid> {
        let hash = self.hash(key);
        self.index
            .find(hash, |&(h, id)| h == hash && self.key_is(id, key))
            .map(|&(_, id)| id)
    }

    fn key_is(&self, id: Sid, key: &ServiceKey) -> bool {
        self.get(id).is_some_and(|e| e.request.key == *key)
    }

    fn get(&self, id: Sid) -> Option<&Entry> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    fn get_mut(&mut self, id: Sid) -> Option<&mut Entry> {
        self.slots.get_mut(id as usize).and_then(Option::as_mut)
    }

    fn by_key(&self, key: &ServiceKey) -> Option<&Entry> {
        self.id_of(key).and_then(|id| self.get(id))
    }

    /// An unused id for a new service; [`Services::insert_new`] fills it.
    fn reserve(&mut self) -> Sid {
        if let Some(id) = self.free.pop() {
            return id;
        }
        let id = Sid::try_from(self.slots.len()).unwrap_or(Sid::MAX);
        self.slots.push(None);
        id
    }

    /// Stores a new service in a reserved id and indexes it.
    fn insert_new(&mut self, id: Sid, entry: Entry) {
        let hash = self.hash(&entry.request.key);
        if let Some(slot) = self.slots.get_mut(id as usize) {
            *slot = Some(entry);
            self.index.insert_unique(hash, (hash, id), |&(h, _)| h);
        }
    }

    /// Takes an indexed entry out of its slot for an update; [`Services::put_back`] returns it.
    fn take(&mut self, id: Sid) -> Option<Entry> {
        self.slots.get_mut(id as usize).and_then(Option::take)
    }

    fn put_back(&mut self, id: Sid, entry: Entry) {
        if let Some(slot) = self.slots.get_mut(id as usize) {
            *slot = Some(entry);
        }
    }

    /// Unindexes and removes a service.
    fn remove(&mut self, key: &ServiceKey) -> Option<(Sid, Entry)> {
        let hash = self.hash(key);
        let slots = &self.slots;
        let found = self.index.find_entry(hash, |&(h, id)| {
            h == hash
                && slots
                    .get(id as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| e.request.key == *key)
        });
        let ((_, id), _) = found.ok()?.remove();
        let entry = self.take(id)?;
        self.free.push(id);
        Some((id, entry))
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (Sid, &Entry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i as Sid, e)))
    }
}

/// The services holding one address, in insertion order (sorted by key when read). One owner,
/// the common case, needs no heap allocation.
#[derive(Debug, Clone)]
enum OwnerIds {
    One(Sid),
    Many(Vec<Sid>),
}

impl OwnerIds {
    fn as_slice(&self) -> &[Sid] {
        match self {
            Self::One(id) => std::slice::from_ref(id),
            Self::Many(ids) => ids,
        }
    }

    fn add(&mut self, id: Sid) {
        if self.as_slice().contains(&id) {
            return;
        }
        match self {
            Self::One(first) => *self = Self::Many(vec![*first, id]),
            Self::Many(ids) => ids.push(id),
        }
    }

    /// Removes `id`; true when no owner is left.
    fn remove(&mut self, id: Sid) -> bool {
        match self {
            Self::One(first) => *first == id,
            Self::Many(ids) => {
                ids.retain(|o| *o != id);
                ids.is_empty()
            }
        }
    }
}

/// A service's addresses: at most one per family, so at most two, stored inline (no heap
/// allocation per service). Every caller adds an address only for a family the service does
/// not hold yet.
#[derive(Debug, Clone, Copy, Default)]
struct Addrs {
    buf: [u128; 2],
    len: u8,
}

impl Addrs {
    fn push(&mut self, a: u128) {
        if let Some(slot) = self.buf.get_mut(usize::from(self.len)) {
            *slot = a;
            self.len += 1;
        }
    }
}

impl std::ops::Deref for Addrs {
    type Target = [u128];

    fn deref(&self) -> &[u128] {
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl std::ops::DerefMut for Addrs {
    fn deref_mut(&mut self) -> &mut [u128] {
        let len = usize::from(self.len);
        self.buf.get_mut(..len).unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
struct AddrOwners {
    owners: OwnerIds,
    sharing: Option<String>,
}

#[derive(Debug, Clone)]
struct PoolSlot {
    pool: Pool,
    conflicts_with: Option<String>,
}

/// The allocation state. See the module header for the rules.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    /// Pools in allocation order (priority, then name).
    pools: Vec<PoolSlot>,
    /// Services by id and key; every output that leaves the allocator is sorted by key.
    services: Services,
    /// Owners of every used address (ordered information lives in `used`).
    owners: HashMap<u128, AddrOwners>,
    used: IntervalSet,
    /// Addresses carrying each sharing key, for joining.
    shared: BTreeMap<String, BTreeSet<u128>>,
    /// Services missing an address they could get later: retried when addresses are freed or
    /// become joinable.
    pending: BTreeSet<ServiceKey>,
    /// Something was freed or became joinable since the last retry.
    dirty: bool,
    /// Free addresses that `RequireDualStack` services found for one family but did not take
    /// because another family failed. Their outcome names the failing family only while these
    /// stay free, so claiming one marks the watchers [`Allocator::stale`].
    watched: HashMap<u128, OwnerIds>,
    /// The addresses each watcher watches (kept out of the service slab, which stays small).
    watchers: HashMap<Sid, Addrs>,
    /// Services whose outcome must be recomputed before the current operation returns.
    stale: Vec<Sid>,
}

impl Allocator {
    /// An allocator with no pools and no services.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the state from pools and what each service held before (persisted state or
    /// Kubernetes Service status): first every service re-adopts its addresses, then missing
    /// ones are allocated, in service order. Restoring a snapshot reproduces the same state.
    pub fn rebuild(pools: Vec<Pool>, services: Vec<(Request, Held)>) -> Result<Self> {
        Self::rebuild_with_invalid(pools, services, Vec::new())
    }

    /// [`Allocator::rebuild`], with services whose request is malformed: they keep what they
    /// held (when nobody else claims it) and are reported with the reason.
    pub fn rebuild_with_invalid(
        pools: Vec<Pool>,
        services: Vec<(Request, Held)>,
        invalid: Vec<(ServiceKey, String, Held)>,
    ) -> Result<Self> {
        let mut alloc = Self::new();
        alloc.install_pools(pools)?;
        let mut all: Vec<(Request, Held, Option<String>)> = services
            .into_iter()
            .map(|(r, h)| (r, h, None))
            .chain(
                invalid
                    .into_iter()
                    .map(|(k, reason, h)| (Request::new(k), h, Some(reason))),
            )
            .collect();
        all.sort_by(|a, b| a.0.key.cmp(&b.0.key));
        all.dedup_by(|a, b| a.0.key == b.0.key);
        let mut ids: Vec<Sid> = Vec::with_capacity(all.len());
        for (request, held, reason) in all {
            let key = reason.is_some().then(|| request.key.clone());
            ids.push(alloc.adopt(request, &held));
            if let (Some(key), Some(reason)) = (key, reason) {
                alloc.reject(&key, reason);
            }
        }
        for &id in &ids {
            alloc.filter(id);
        }
        for &id in &ids {
            alloc.fill(id);
        }
        alloc.retry();
        Ok(alloc)
    }

    /// Replaces the pools. `pools` is in age order (oldest first): a pool overlapping an older
    /// one is marked conflicting. Existing allocations are re-checked (see the module header).
    pub fn set_pools(&mut self, pools: Vec<Pool>) -> Result<()> {
        self.install_pools(pools)?;
        let ids = self.sorted_ids();
        for &id in &ids {
            self.filter(id);
        }
        for &id in &ids {
            self.fill(id);
        }
        self.retry();
        Ok(())
    }

    fn install_pools(&mut self, pools: Vec<Pool>) -> Result<()> {
        let mut names = BTreeSet::new();
        for p in &pools {
            if !names.insert(p.name().to_owned()) {
                return Err(Error::DuplicatePool(p.name().to_owned()));
            }
        }
        let mut accepted: Vec<(AddrRange, String)> = Vec::new();
        let mut slots = Vec::with_capacity(pools.len());
        for pool in pools {
            let conflicts_with = accepted
                .iter()
                .find(|(r, _)| pool.ranges().iter().any(|p| p.lo <= r.hi && r.lo <= p.hi))
                .map(|(_, name)| name.clone());
            if conflicts_with.is_none() {
                accepted.extend(pool.ranges().iter().map(|r| (*r, pool.name().to_owned())));
            }
            slots.push(PoolSlot {
                pool,
                conflicts_with,
            });
        }
        slots.sort_by(|a, b| a.pool.order_key().cmp(&b.pool.order_key()));
        self.pools = slots;
        self.dirty = true;
        Ok(())
    }

    /// Adds or updates a service and allocates for it; [`Allocator::service`] tells the outcome.
    pub fn upsert(&mut self, request: Request) {
        let id = self.services.id_of(&request.key);
        match id.and_then(|id| self.services.get_mut(id).map(|e| (id, e))) {
            Some((_, e)) if e.request == request && e.invalid.is_none() => {}
            Some((id, e)) => {
                // An explicit new request is the user's way to move a service.
                let explicit = e.request.requested_ips != request.requested_ips
                    || e.request.requested_pool != request.requested_pool;
                // Who may join (or is reported as blocking) an address depends on its holders'
                // sharing key, allowed namespaces and ports.
                let sharing_changed = !e.addresses.is_empty()
                    && (e.request.sharing != request.sharing || e.request.ports != request.ports);
                e.request = request;
                e.invalid = None;
                self.dirty |= sharing_changed;
                self.filter(id);
                if explicit && let Some(e) = self.services.get_mut(id) {
                    e.lost.clear();
                }
                self.fill(id);
            }
            None => {
                // Hot path: allocate on the new entry before inserting it, one index insert.
                let id = self.services.reserve();
                let mut entry = Entry::new(request);
                let (outcome, pending) = self.fill_entry(id, &mut entry);
                entry.outcome = outcome;
                if pending {
                    self.pending.insert(entry.request.key.clone());
                }
                self.services.insert_new(id, entry);
            }
        }
        self.retry();
    }

    /// Marks a service's request as invalid (for example an unparsable annotation). Its current
    /// addresses are kept untouched until a valid request arrives.
    pub fn reject(&mut self, key: &ServiceKey, reason: impl Into<String>) {
        let reason = reason.into();
        let id = match self.services.id_of(key) {
            Some(id) => id,
            None => {
                let id = self.services.reserve();
                self.services
                    .insert_new(id, Entry::new(Request::new(key.clone())));
                id
            }
        };
        let Some(mut entry) = self.services.take(id) else {
            return;
        };
        self.unwatch(id);
        entry.invalid = Some(reason.clone());
        entry.outcome = Outcome::Unsatisfied(Unsatisfied::InvalidRequest { reason });
        self.pending.remove(key);
        self.services.put_back(id, entry);
    }

    /// Removes a service and frees its addresses (shared ones stay with their other owners).
    pub fn remove(&mut self, key: &ServiceKey) {
        if let Some((id, entry)) = self.services.remove(key) {
            self.unwatch(id);
            for &a in entry.addresses.iter() {
                self.release(id, a);
            }
        }
        if !self.pending.is_empty() {
            self.pending.remove(key);
        }
        self.retry();
    }

    /// The allocation of one service.
    pub fn service(&self, key: &ServiceKey) -> Option<ServiceView<'_>> {
        self.services.by_key(key).map(Entry::view)
    }

    /// Every service's allocation, in key order.
    pub fn services(&self) -> impl Iterator<Item = ServiceView<'_>> {
        let mut all: Vec<&Entry> = self.services.iter().map(|(_, e)| e).collect();
        all.sort_unstable_by(|a, b| a.request.key.cmp(&b.request.key));
        all.into_iter().map(Entry::view)
    }

    /// Ids of every service, in key order.
    fn sorted_ids(&self) -> Vec<Sid> {
        let mut ids: Vec<(&ServiceKey, Sid)> = self
            .services
            .iter()
            .map(|(id, e)| (&e.request.key, id))
            .collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// What every service holds, in key order, for persistence.
    pub fn snapshot(&self) -> Vec<(ServiceKey, Held)> {
        self.services()
            .map(|v| {
                (
                    v.key.clone(),
                    Held {
                        addresses: v.addresses,
                        lost: v.lost,
                    },
                )
            })
            .collect()
    }

    /// Services holding `ip`, in key order.
    pub fn owners_of(&self, ip: IpAddr) -> Vec<&ServiceKey> {
        self.owners
            .get(&addr_key(ip))
            .map(|o| {
                self.sorted_owners(o)
                    .into_iter()
                    .map(|e| &e.request.key)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The entries of an address's owners, in key order (an entry taken out for an update is
    /// left out).
    fn sorted_owners(&self, owners: &AddrOwners) -> Vec<&Entry> {
        let mut out: Vec<&Entry> = owners
            .owners
            .as_slice()
            .iter()
            .filter_map(|id| self.services.get(*id))
            .collect();
        out.sort_unstable_by(|a, b| a.request.key.cmp(&b.request.key));
        out
    }

    /// Counts and conflict state of every pool, by name.
    pub fn pool_statuses(&self) -> Vec<PoolStatus> {
        let mut out: Vec<PoolStatus> = self
            .pools
            .iter()
            .map(|slot| {
                let total = slot.pool.total();
                let used = slot
                    .pool
                    .ranges()
                    .iter()
                    .map(|r| self.used.count_in(r.lo, r.hi))
                    .sum::<u128>();
                PoolStatus {
                    name: slot.pool.name().to_owned(),
                    total,
                    used,
                    available: total.saturating_sub(used),
                    disabled: slot.pool.spec().disabled,
                    conflicts_with: slot.conflicts_with.clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Number of services known.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// True when no service is known.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    // ---- internals -------------------------------------------------------------------------

    /// Takes over addresses a service held before, without any other allocation.
    fn adopt(&mut self, request: Request, held: &Held) -> Sid {
        let id = self.services.reserve();
        let mut entry = Entry::new(request);
        entry.lost = held.lost.iter().map(|ip| addr_key(*ip)).collect();
        for ip in &held.addresses {
            let a = addr_key(*ip);
            let family_taken = entry
                .addresses
                .iter()
                .any(|x| key_family(*x) == key_family(a));
            if family_taken {
                continue;
            }
            if self.share_check(&entry.request, a).is_ok() {
                self.claim(
                    id,
                    entry.request.sharing.as_ref().map(|s| s.key.as_str()),
                    a,
                );
                entry.addresses.push(a);
            } else {
                entry.lost.push(a);
            }
        }
        self.services.insert_new(id, entry);
        id
    }

    /// Releases addresses that no longer fit the service (rule 1 and 2 of the module header).
    fn filter(&mut self, id: Sid) {
        let Some(mut entry) = self.services.take(id) else {
            return;
        };
        if entry.invalid.is_none() {
            let wanted = entry.request.wanted_families();
            let mut kept = Addrs::default();
            for &a in std::mem::take(&mut entry.addresses).iter() {
                let fam = key_family(a);
                let ip = key_addr(a);
                let req = &entry.request;
                let keep = wanted.contains(&fam)
                    && !kept.iter().any(|k| key_family(*k) == fam)
                    && (req.requested_ips.is_empty() || req.requested_ips.contains(&ip));
                if !keep {
                    self.release(id, a);
                } else if !self.in_selecting_pool(req, a) {
                    self.release(id, a);
                    entry.lost.push(a);
                } else if self.share_check(req, a).is_err() {
                    self.release(id, a);
                } else {
                    let sharing = req.sharing.as_ref().map(|s| s.key.clone());
                    self.set_sharing(a, sharing);
                    kept.push(a);
                }
            }
            entry.lost.retain(|a| wanted.contains(&key_family(*a)));
            entry.lost.sort_unstable();
            entry.lost.dedup();
            entry.addresses = kept;
        }
        self.services.put_back(id, entry);
    }

    /// Allocates missing families (rule 3) and records the outcome.
    fn fill(&mut self, id: Sid) {
        let Some(mut entry) = self.services.take(id) else {
            return;
        };
        let mut pending = false;
        if entry.invalid.is_none() {
            (entry.outcome, pending) = self.fill_entry(id, &mut entry);
        }
        if pending {
            if !self.pending.contains(&entry.request.key) {
                self.pending.insert(entry.request.key.clone());
            }
        } else if !self.pending.is_empty() {
            self.pending.remove(&entry.request.key);
        }
        self.services.put_back(id, entry);
    }

    /// Returns the outcome and whether the service still waits for an address (to retry).
    fn fill_entry(&mut self, id: Sid, entry: &mut Entry) -> (Outcome, bool) {
        // Before any claim below, so that the service's own claims do not mark it stale.
        self.unwatch(id);
        let req = &entry.request;
        let wanted = req.wanted_families();
        if let Some(reason) = request_problem(req, &wanted) {
            return (
                Outcome::Unsatisfied(Unsatisfied::InvalidRequest { reason }),
                false,
            );
        }
        let sharing = req.sharing.as_ref().map(|s| s.key.clone());
        let has = |addrs: &[u128], fam: IpFamily| addrs.iter().any(|a| key_family(*a) == fam);

        // A service asking for specific addresses is reported against them, not its losses.
        if !req.requested_ips.is_empty() {
            entry.lost.clear();
        }
        // Lost addresses come back when they are usable again; until then, no new ones.
        if !entry.lost.is_empty() {
            let mut still_lost = Vec::new();
            for a in std::mem::take(&mut entry.lost) {
                if !has(&entry.addresses, key_family(a))
                    && self.in_selecting_pool(req, a)
                    && self.share_check(req, a).is_ok()
                {
                    self.claim(id, sharing.as_deref(), a);
                    entry.addresses.push(a);
                } else {
                    still_lost.push(a);
                }
            }
            entry.lost = still_lost;
            if !entry.lost.is_empty() {
                sort_by_family(&mut entry.addresses, &wanted);
                let ips = entry.lost.iter().map(|a| key_addr(*a)).collect();
                return (Outcome::Unsatisfied(Unsatisfied::AddressLost { ips }), true);
            }
        }

        // At most one address per family: no heap allocation.
        let mut fresh = [0u128; 2];
        let mut n_fresh = 0;
        let mut failure = None;
        for fam in wanted.iter() {
            if has(&entry.addresses, fam) {
                continue;
            }
            let got = if req.requested_ips.is_empty() {
                self.find_auto(req, fam)
            } else {
                let ip = req
                    .requested_ips
                    .iter()
                    .find(|ip| IpFamily::of(**ip) == fam)
                    .copied();
                match ip {
                    Some(ip) => self.check_requested(req, ip),
                    // Families without a requested address stay empty: requests turn
                    // auto-assignment off.
                    None => continue,
                }
            };
            match got {
                Ok(a) => {
                    if let Some(slot) = fresh.get_mut(n_fresh) {
                        *slot = a;
                        n_fresh += 1;
                    }
                }
                Err(u) => {
                    failure.get_or_insert(u);
                }
            }
        }
        if failure.is_some() && req.family_policy == FamilyPolicy::RequireDualStack {
            // Nothing is taken; the reported failure holds only while these stay free.
            let mut watching = Addrs::default();
            for &a in fresh.get(..n_fresh).unwrap_or_default() {
                match self.watched.entry(a) {
                    hashbrown::hash_map::Entry::Occupied(o) => o.into_mut().add(id),
                    hashbrown::hash_map::Entry::Vacant(v) => {
                        v.insert(OwnerIds::One(id));
                    }
                }
                watching.push(a);
            }
            if !watching.is_empty() {
                self.watchers.insert(id, watching);
            }
            n_fresh = 0;
        }
        for &a in fresh.get(..n_fresh).unwrap_or_default() {
            self.claim(id, sharing.as_deref(), a);
            entry.addresses.push(a);
        }
        sort_by_family(&mut entry.addresses, &wanted);
        let pending = failure.is_some();
        let outcome = match failure {
            Some(_)
                if req.family_policy == FamilyPolicy::PreferDualStack
                    && !entry.addresses.is_empty() =>
            {
                Outcome::Satisfied
            }
            Some(u) => Outcome::Unsatisfied(u),
            None => Outcome::Satisfied,
        };
        (outcome, pending)
    }

    /// Retries pending services, in key order, until nothing changes: all of them after an
    /// address was freed or became joinable, else only those whose outcome went stale.
    fn retry(&mut self) {
        loop {
            let ids: Vec<Sid> = if self.dirty {
                self.dirty = false;
                // The full pass below recomputes them too; staleness it causes is kept.
                self.stale.clear();
                self.pending
                    .iter()
                    .filter_map(|k| self.services.id_of(k))
                    .collect()
            } else if !self.stale.is_empty() {
                let mut ids = std::mem::take(&mut self.stale);
                ids.sort_unstable_by(|x, y| {
                    let key = |id: &Sid| self.services.get(*id).map(|e| &e.request.key);
                    key(x).cmp(&key(y))
                });
                ids.dedup();
                ids
            } else {
                break;
            };
            if ids.is_empty() {
                break;
            }
            for id in ids {
                self.fill(id);
            }
        }
        self.dirty = false;
        self.stale.clear();
    }

    /// Forgets the free addresses a service was watching (it is being re-evaluated or removed).
    fn unwatch(&mut self, id: Sid) {
        if self.watchers.is_empty() {
            return;
        }
        let Some(addrs) = self.watchers.remove(&id) else {
            return;
        };
        for &a in addrs.iter() {
            if let Some(w) = self.watched.get_mut(&a)
                && w.remove(id)
            {
                self.watched.remove(&a);
            }
        }
    }

    /// The address is in some pool (any state) that selects the service and, if the service
    /// names a pool, in that one.
    fn in_selecting_pool(&self, req: &Request, a: u128) -> bool {
        self.pools.iter().any(|s| {
            s.pool.contains_key(a)
                && s.pool.selects(&req.labels, &req.namespace_labels)
                && req
                    .requested_pool
                    .as_ref()
                    .is_none_or(|n| n == s.pool.name())
        })
    }

    /// A pool may make a new allocation for this service.
    fn usable_for_new(&self, slot: &PoolSlot, req: &Request) -> bool {
        !slot.pool.spec().disabled
            && slot.conflicts_with.is_none()
            && match &req.requested_pool {
                Some(name) => name == slot.pool.name(),
                None => slot.pool.spec().auto_assign || !req.requested_ips.is_empty(),
            }
            && slot.pool.selects(&req.labels, &req.namespace_labels)
    }

    /// Whether `req` may hold `a` alongside its current other owners.
    fn share_check(&self, req: &Request, a: u128) -> Result<(), Unsatisfied> {
        let Some(owners) = self.owners.get(&a) else {
            return Ok(());
        };
        let others = match &owners.owners {
            // The common case: one owner, nothing to order.
            OwnerIds::One(id) => self.services.get(*id).into_iter().collect::<Vec<_>>(),
            OwnerIds::Many(_) => self.sorted_owners(owners),
        };
        for other_entry in others.into_iter().filter(|e| e.request.key != req.key) {
            let other_req = &other_entry.request;
            let other = &other_req.key;
            if !req.can_share_with(other_req) {
                let same_key = matches!((&req.sharing, &other_req.sharing), (Some(x), Some(y)) if x.key == y.key);
                return Err(if same_key {
                    Unsatisfied::SharingConflict {
                        ip: key_addr(a),
                        with: other.clone(),
                    }
                } else {
                    Unsatisfied::RequestedIpTaken {
                        ip: key_addr(a),
                        by: other.clone(),
                    }
                });
            }
        }
        Ok(())
    }

    fn check_requested(&self, req: &Request, ip: IpAddr) -> Result<u128, Unsatisfied> {
        let a = addr_key(ip);
        let in_pool = self
            .pools
            .iter()
            .any(|s| s.pool.contains_key(a) && self.usable_for_new(s, req));
        if !in_pool {
            return Err(Unsatisfied::RequestedIpNotInPool { ip });
        }
        self.share_check(req, a)?;
        Ok(a)
    }

    fn find_auto(&self, req: &Request, fam: IpFamily) -> Result<u128, Unsatisfied> {
        let candidates = || {
            self.pools
                .iter()
                .filter(move |s| s.pool.has_family(fam) && self.usable_for_new(s, req))
        };
        if let Some(sharing) = &req.sharing
            && let Some(addrs) = self.shared.get(&sharing.key)
        {
            for slot in candidates() {
                for r in slot.pool.ranges().iter().filter(|r| r.family() == fam) {
                    if let Some(a) = addrs
                        .range(r.lo..=r.hi)
                        .copied()
                        .find(|a| self.share_check(req, *a).is_ok())
                    {
                        return Ok(a);
                    }
                }
            }
        }
        let mut matched = false;
        for slot in candidates() {
            matched = true;
            for r in slot.pool.ranges().iter().filter(|r| r.family() == fam) {
                if let Some(a) = self.used.first_free(r.lo, r.hi) {
                    return Ok(a);
                }
            }
        }
        Err(if matched {
            Unsatisfied::PoolExhausted { family: fam }
        } else {
            Unsatisfied::NoMatchingPool { family: fam }
        })
    }

    fn claim(&mut self, id: Sid, sharing: Option<&str>, a: u128) {
        if !self.watched.is_empty()
            && let Some(w) = self.watched.get(&a)
        {
            self.stale.extend_from_slice(w.as_slice());
        }
        let owners = match self.owners.entry(a) {
            hashbrown::hash_map::Entry::Occupied(o) => {
                let owners = o.into_mut();
                owners.owners.add(id);
                owners
            }
            hashbrown::hash_map::Entry::Vacant(v) => {
                self.used.insert(a);
                v.insert(AddrOwners {
                    owners: OwnerIds::One(id),
                    sharing: None,
                })
            }
        };
        if let Some(s) = sharing {
            if owners.sharing.is_none() {
                owners.sharing = Some(s.to_owned());
            }
            // A shared address may now be joined by others.
            self.shared.entry(s.to_owned()).or_default().insert(a);
            self.dirty = true;
        }
    }

    /// Records the sharing key of a kept address (it changes when its holder's key changes),
    /// so that others can join it exactly as after a rebuild.
    fn set_sharing(&mut self, a: u128, sharing: Option<String>) {
        let Some(owners) = self.owners.get_mut(&a) else {
            return;
        };
        if owners.sharing == sharing {
            return;
        }
        if let Some(old) = owners.sharing.take()
            && let Some(set) = self.shared.get_mut(&old)
        {
            set.remove(&a);
            if set.is_empty() {
                self.shared.remove(&old);
            }
        }
        if let Some(new) = &sharing {
            self.shared.entry(new.clone()).or_default().insert(a);
        }
        owners.sharing = sharing;
        self.dirty = true;
    }

    fn release(&mut self, id: Sid, a: u128) {
        let Some(owners) = self.owners.get_mut(&a) else {
            return;
        };
        if owners.owners.remove(id) {
            if let Some(s) = owners.sharing.take()
                && let Some(set) = self.shared.get_mut(&s)
            {
                set.remove(&a);
                if set.is_empty() {
                    self.shared.remove(&s);
                }
            }
            self.owners.remove(&a);
            self.used.remove(a);
        }
        self.dirty = true;
    }
}

impl Entry {
    fn new(request: Request) -> Self {
        Self {
            request,
            addresses: Addrs::default(),
            lost: Vec::new(),
            invalid: None,
            outcome: Outcome::Satisfied,
        }
    }

    fn view(&self) -> ServiceView<'_> {
        ServiceView {
            key: &self.request.key,
            addresses: self.addresses.iter().map(|a| key_addr(*a)).collect(),
            lost: self.lost.iter().map(|a| key_addr(*a)).collect(),
            outcome: &self.outcome,
        }
    }
}

/// Problems that make a request impossible to honour as written.
fn request_problem(req: &Request, wanted: &Families) -> Option<String> {
    let mut seen = BTreeSet::new();
    for ip in &req.requested_ips {
        let fam = IpFamily::of(*ip);
        if !wanted.contains(&fam) {
            return Some(format!(
                "requested address {ip} is {fam}, but the service's families are {:?}",
                wanted.to_vec()
            ));
        }
        if !seen.insert(fam) {
            return Some(format!("more than one {fam} address requested"));
        }
    }
    None
}

fn sort_by_family(addrs: &mut [u128], wanted: &Families) {
    if addrs.len() > 1 {
        addrs.sort_by_key(|a| wanted.position(key_family(*a)).unwrap_or(usize::MAX));
    }
}
