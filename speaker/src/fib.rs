//! Kernel FIB import: installs selected received routes into a configurable kernel routing table,
//! with ECMP multipath next hops, and keeps that table equal to the desired set.
//!
//! Split as every Herald reconciler: the desired routes are computed elsewhere (import policy and
//! best-path selection in [`crate::import_policy`]); [`diff`] is a pure function from installed and
//! desired routes to idempotent [`FibOp`]s; a [`FibWriter`] applies them. [`Fib`] tracks what was
//! applied, retries what failed on the next reconcile, adopts routes left by a previous run
//! ([`Fib::resync`]) and removes everything at shutdown ([`Fib::shutdown`]) unless graceful
//! restart keeps the routes. Adopted routes are [`Retained`] — still forwarding — until the peers'
//! End-of-RIB or a deferral deadline, and only then swept if not learned again. The only I/O is
//! in [`netlink::NetlinkFib`] (rtnetlink).

pub mod driver;
pub mod netlink;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::error::{Error, Result};

pub use netlink::{HERALD_RTPROT, NetlinkFib, RTPROT_BGP};

/// One next hop of a kernel route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FibNextHop {
    /// The gateway address: of the prefix's family, or IPv6 for an IPv4 prefix (RFC 8950).
    pub gateway: IpAddr,
    /// The outgoing interface; required for IPv6 link-local gateways, otherwise the kernel
    /// resolves it from the gateway address.
    pub ifindex: Option<u32>,
}

impl FibNextHop {
    /// A next hop through `gateway`, device chosen by the kernel.
    pub fn via(gateway: IpAddr) -> Self {
        Self {
            gateway,
            ifindex: None,
        }
    }
}

/// Routes of one table: prefix → its (ECMP) next hops. An empty set is not a route.
pub type FibRoutes = BTreeMap<IpNet, BTreeSet<FibNextHop>>;

/// One idempotent change to the kernel table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibOp {
    /// Install the route, replacing whatever route the table has for the prefix.
    Replace {
        /// Destination.
        prefix: IpNet,
        /// Its next hops (more than one: a multipath route).
        next_hops: BTreeSet<FibNextHop>,
    },
    /// Remove the route for the prefix (absent already: success).
    Remove {
        /// Destination.
        prefix: IpNet,
    },
}

/// The operations that turn `installed` into `desired`: removals first, then replacements, each
/// in prefix order. Routes that match are left alone.
pub fn diff(installed: &FibRoutes, desired: &FibRoutes) -> Vec<FibOp> {
    let mut ops: Vec<FibOp> = installed
        .iter()
        .filter(|(p, hops)| !hops.is_empty() && desired.get(p).is_none_or(BTreeSet::is_empty))
        .map(|(&prefix, _)| FibOp::Remove { prefix })
        .collect();
    ops.extend(
        desired
            .iter()
            .filter(|(p, hops)| !hops.is_empty() && installed.get(p) != Some(hops))
            .map(|(&prefix, hops)| FibOp::Replace {
                prefix,
                next_hops: hops.clone(),
            }),
    );
    ops
}

/// Routes a previous run left in the table, kept forwarding while the restarted speaker relearns
/// them (RFC 4724 §4.1: the restarting speaker retains its forwarding state and "MUST defer route
/// selection ... until it either (a) receives the End-of-RIB marker from all its peers ... or (b)
/// the Selection_Deferral_Timer ... expires"). Pure: the caller passes the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    routes: FibRoutes,
    deadline: Instant,
}

impl Retained {
    /// Retains `routes` until `now + deferral`; `None` when there is nothing to retain.
    pub fn new(routes: FibRoutes, now: Instant, deferral: Duration) -> Option<Self> {
        (!routes.is_empty()).then(|| Self {
            routes,
            deadline: now + deferral,
        })
    }

    /// When the retained routes are swept even without End-of-RIB from every peer.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deferral has run out at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    /// The retained routes not learned again so far.
    pub fn routes(&self) -> &FibRoutes {
        &self.routes
    }

    /// What the table should hold while routes are retained: `desired`, plus each retained route
    /// whose prefix has not been learned again. A prefix once learned again is no longer retained,
    /// so its later withdrawal removes it at once.
    pub fn overlay(&mut self, desired: &FibRoutes) -> FibRoutes {
        self.routes
            .retain(|prefix, _| desired.get(prefix).is_none_or(BTreeSet::is_empty));
        let mut out = desired.clone();
        for (prefix, hops) in &self.routes {
            out.insert(*prefix, hops.clone());
        }
        out
    }
}

/// Applies FIB operations to one kernel table (or to a fake in tests).
pub trait FibWriter {
    /// Installs the route for a prefix we hold no route for. Fails, leaving the table as it is,
    /// when another route (a static route, another daemon's) holds the prefix at our table and
    /// metric: a route learned from a peer never overwrites one the operator put there.
    fn add(
        &mut self,
        prefix: IpNet,
        next_hops: &BTreeSet<FibNextHop>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Replaces our route for `prefix` (installs it if it is gone).
    fn replace(
        &mut self,
        prefix: IpNet,
        next_hops: &BTreeSet<FibNextHop>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Removes the route for `prefix`; succeeds if there is none.
    fn remove(&mut self, prefix: IpNet) -> impl Future<Output = Result<()>> + Send;
    /// The routes this writer owns that the table holds now.
    fn installed(&mut self) -> impl Future<Output = Result<FibRoutes>> + Send;
}

/// What one reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Routes installed or replaced.
    pub replaced: usize,
    /// Routes removed.
    pub removed: usize,
    /// Operations that failed (they are retried by the next reconcile), with the error text.
    pub failed: Vec<(IpNet, String)>,
}

/// The FIB installer: a writer plus the routes it has applied.
#[derive(Debug)]
pub struct Fib<W> {
    writer: W,
    applied: FibRoutes,
    /// Prefixes whose replacement failed: our previous route may still be in the table, so they
    /// are replaced (not added) on retry, and removed if no longer desired.
    unsure: BTreeSet<IpNet>,
}

impl<W: FibWriter> Fib<W> {
    /// An installer that assumes the table holds none of our routes (see [`Fib::resync`]).
    pub fn new(writer: W) -> Self {
        Self {
            writer,
            applied: FibRoutes::new(),
            unsure: BTreeSet::new(),
        }
    }

    /// The routes applied so far.
    pub fn applied(&self) -> &FibRoutes {
        &self.applied
    }

    /// The writer (for inspection in tests).
    pub fn writer(&self) -> &W {
        &self.writer
    }

    /// Re-reads our routes from the table, so a reconcile after a restart removes leftovers and
    /// skips routes that are already right.
    pub async fn resync(&mut self) -> Result<()> {
        self.applied = self.writer.installed().await?;
        Ok(())
    }

    /// Makes the table hold exactly `desired`. Every operation is attempted; failed ones are
    /// reported and, since `applied` only records successes, retried by the next call. A prefix
    /// we hold no route for is added, never replaced, so a route of another origin survives.
    pub async fn reconcile(&mut self, desired: &FibRoutes) -> ReconcileReport {
        let mut report = ReconcileReport::default();
        let leftovers: Vec<IpNet> = self
            .unsure
            .iter()
            .filter(|p| desired.get(p).is_none_or(BTreeSet::is_empty))
            .copied()
            .collect();
        let removals = diff(&self.applied, desired)
            .into_iter()
            .chain(leftovers.into_iter().map(|prefix| FibOp::Remove { prefix }));
        for op in removals {
            match op {
                FibOp::Remove { prefix } => match self.writer.remove(prefix).await {
                    Ok(()) => {
                        self.applied.remove(&prefix);
                        self.unsure.remove(&prefix);
                        report.removed += 1;
                    }
                    Err(e) => report.failed.push((prefix, e.to_string())),
                },
                FibOp::Replace { prefix, next_hops } => {
                    let ours = self.applied.contains_key(&prefix) || self.unsure.contains(&prefix);
                    let done = if ours {
                        self.writer.replace(prefix, &next_hops).await
                    } else {
                        self.writer.add(prefix, &next_hops).await
                    };
                    match done {
                        Ok(()) => {
                            self.applied.insert(prefix, next_hops);
                            self.unsure.remove(&prefix);
                            report.replaced += 1;
                        }
                        Err(e) => {
                            // Our old route may or may not still be there: replace it next time.
                            if self.applied.remove(&prefix).is_some() {
                                self.unsure.insert(prefix);
                            }
                            report.failed.push((prefix, e.to_string()));
                        }
                    }
                }
            }
        }
        report
    }

    /// Removes every route we installed (session loss of all peers, shutdown without graceful
    /// restart). Returns the first error after attempting all removals.
    pub async fn shutdown(&mut self) -> Result<()> {
        let report = self.reconcile(&FibRoutes::new()).await;
        match report.failed.into_iter().next() {
            None => Ok(()),
            Some((prefix, reason)) => Err(Error::Netlink {
                op: format!("remove {prefix} at shutdown"),
                reason,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("prefix")
    }

    fn hops(gws: &[&str]) -> BTreeSet<FibNextHop> {
        gws.iter()
            .map(|g| FibNextHop::via(g.parse().expect("addr")))
            .collect()
    }

    fn routes(list: &[(&str, &[&str])]) -> FibRoutes {
        list.iter().map(|(p, g)| (net(p), hops(g))).collect()
    }

    /// In-memory table; fails operations on prefixes listed in `broken`, and adds (not
    /// replacements) of prefixes another origin holds, listed in `foreign`, or that it holds.
    #[derive(Debug, Default)]
    struct FakeTable {
        table: FibRoutes,
        broken: BTreeSet<IpNet>,
        foreign: BTreeSet<IpNet>,
        calls: usize,
    }

    impl FibWriter for FakeTable {
        async fn add(&mut self, prefix: IpNet, next_hops: &BTreeSet<FibNextHop>) -> Result<()> {
            // As the kernel's NLM_F_EXCL: any route at the prefix, ours included, refuses an add.
            if self.foreign.contains(&prefix) || self.table.contains_key(&prefix) {
                self.calls += 1;
                return Err(Error::Netlink {
                    op: format!("add {prefix}"),
                    reason: "EEXIST".into(),
                });
            }
            self.replace(prefix, next_hops).await
        }
        async fn replace(&mut self, prefix: IpNet, next_hops: &BTreeSet<FibNextHop>) -> Result<()> {
            self.calls += 1;
            if self.broken.contains(&prefix) {
                return Err(Error::Netlink {
                    op: format!("replace {prefix}"),
                    reason: "EIO".into(),
                });
            }
            self.table.insert(prefix, next_hops.clone());
            Ok(())
        }
        async fn remove(&mut self, prefix: IpNet) -> Result<()> {
            self.calls += 1;
            if self.broken.contains(&prefix) {
                return Err(Error::Netlink {
                    op: format!("remove {prefix}"),
                    reason: "EIO".into(),
                });
            }
            self.table.remove(&prefix);
            Ok(())
        }
        async fn installed(&mut self) -> Result<FibRoutes> {
            Ok(self.table.clone())
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn retained_routes_stay_until_learned_again_and_relearned_ones_follow_desired() {
        let now = Instant::now();
        assert_eq!(
            Retained::new(FibRoutes::new(), now, Duration::from_secs(120)),
            None
        );
        let left = routes(&[
            ("10.0.0.0/24", &["192.0.2.1"]),
            ("10.0.1.0/24", &["192.0.2.1"]),
        ]);
        let mut kept = Retained::new(left.clone(), now, Duration::from_secs(120)).expect("some");
        assert!(!kept.expired(now + Duration::from_secs(119)));
        assert!(kept.expired(now + Duration::from_secs(120)));
        // Nothing learned yet: everything left over stays in the table.
        assert_eq!(kept.overlay(&FibRoutes::new()), left);
        // 10.0.0.0/24 learned again through another next hop: desired wins for it.
        let relearned = routes(&[("10.0.0.0/24", &["192.0.2.9"])]);
        assert_eq!(
            kept.overlay(&relearned),
            routes(&[
                ("10.0.0.0/24", &["192.0.2.9"]),
                ("10.0.1.0/24", &["192.0.2.1"]),
            ])
        );
        // ... and once withdrawn, it is gone, not brought back from the previous run.
        assert_eq!(
            kept.overlay(&FibRoutes::new()),
            routes(&[("10.0.1.0/24", &["192.0.2.1"])])
        );
        assert_eq!(kept.routes().len(), 1);
    }

    #[test]
    fn diff_removes_missing_replaces_changed_and_keeps_equal() {
        let installed = routes(&[
            ("10.0.0.0/24", &["192.0.2.1"]),
            ("10.0.1.0/24", &["192.0.2.1"]),
            ("10.0.2.0/24", &["192.0.2.1", "192.0.2.2"]),
        ]);
        let desired = routes(&[
            ("10.0.1.0/24", &["192.0.2.1"]),
            ("10.0.2.0/24", &["192.0.2.2"]),
            ("10.0.3.0/24", &["192.0.2.1", "192.0.2.3"]),
            ("10.0.4.0/24", &[]),
        ]);
        assert_eq!(
            diff(&installed, &desired),
            vec![
                FibOp::Remove {
                    prefix: net("10.0.0.0/24")
                },
                FibOp::Replace {
                    prefix: net("10.0.2.0/24"),
                    next_hops: hops(&["192.0.2.2"])
                },
                FibOp::Replace {
                    prefix: net("10.0.3.0/24"),
                    next_hops: hops(&["192.0.2.1", "192.0.2.3"])
                },
            ]
        );
        assert!(diff(&desired, &desired).is_empty());
    }

    #[test]
    fn an_empty_next_hop_set_removes_the_route() {
        let installed = routes(&[("10.0.0.0/24", &["192.0.2.1"])]);
        let desired = routes(&[("10.0.0.0/24", &[])]);
        assert_eq!(
            diff(&installed, &desired),
            vec![FibOp::Remove {
                prefix: net("10.0.0.0/24")
            }]
        );
    }

    #[test]
    fn reconcile_is_idempotent() {
        let mut fib = Fib::new(FakeTable::default());
        let want = routes(&[
            ("10.0.0.0/24", &["192.0.2.1", "192.0.2.2"]),
            ("2001:db8::/32", &["2001:db8:ff::1"]),
        ]);
        let r = block_on(fib.reconcile(&want));
        assert_eq!((r.replaced, r.removed, r.failed.len()), (2, 0, 0));
        assert_eq!(fib.writer().table, want);
        let calls = fib.writer().calls;
        let r = block_on(fib.reconcile(&want));
        assert_eq!(r, ReconcileReport::default());
        assert_eq!(
            fib.writer().calls,
            calls,
            "no kernel calls when nothing changed"
        );
    }

    #[test]
    fn failed_operations_are_retried_by_the_next_reconcile() {
        let mut fib = Fib::new(FakeTable::default());
        fib.writer.broken.insert(net("10.0.1.0/24"));
        let want = routes(&[
            ("10.0.0.0/24", &["192.0.2.1"]),
            ("10.0.1.0/24", &["192.0.2.1"]),
        ]);
        let r = block_on(fib.reconcile(&want));
        assert_eq!(r.replaced, 1);
        assert_eq!(r.failed.len(), 1);
        assert!(r.failed[0].1.contains("EIO"));
        assert!(!fib.applied().contains_key(&net("10.0.1.0/24")));
        fib.writer.broken.clear();
        let r = block_on(fib.reconcile(&want));
        assert_eq!((r.replaced, r.failed.len()), (1, 0));
        assert_eq!(fib.writer().table, want);
    }

    #[test]
    fn a_prefix_held_by_another_origin_is_never_replaced() {
        let mut fib = Fib::new(FakeTable::default());
        fib.writer.foreign.insert(net("10.0.1.0/24"));
        let want = routes(&[
            ("10.0.0.0/24", &["192.0.2.1"]),
            ("10.0.1.0/24", &["192.0.2.1"]),
        ]);
        let r = block_on(fib.reconcile(&want));
        assert_eq!(r.replaced, 1);
        assert_eq!(r.failed.len(), 1, "{r:?}");
        assert!(r.failed[0].1.contains("EEXIST"), "{r:?}");
        assert!(!fib.writer().table.contains_key(&net("10.0.1.0/24")));
        // Still held: the retry adds again, and never replaces.
        let r = block_on(fib.reconcile(&want));
        assert_eq!((r.replaced, r.failed.len()), (0, 1), "{r:?}");
        // The operator removes their route: ours goes in.
        fib.writer.foreign.clear();
        let r = block_on(fib.reconcile(&want));
        assert_eq!((r.replaced, r.failed.len()), (1, 0), "{r:?}");
        assert_eq!(fib.writer().table, want);
    }

    #[test]
    fn a_failed_replacement_is_replaced_on_retry_and_removed_once_withdrawn() {
        let mut fib = Fib::new(FakeTable::default());
        let prefix = net("10.0.1.0/24");
        block_on(fib.reconcile(&routes(&[("10.0.1.0/24", &["192.0.2.1"])])));
        fib.writer.broken.insert(prefix);
        let moved = routes(&[("10.0.1.0/24", &["192.0.2.2"])]);
        assert_eq!(block_on(fib.reconcile(&moved)).failed.len(), 1);
        fib.writer.broken.clear();
        // Our old route is still in the table: the retry replaces it (an add would be refused).
        let r = block_on(fib.reconcile(&moved));
        assert_eq!((r.replaced, r.failed.len()), (1, 0), "{r:?}");
        assert_eq!(fib.writer().table, moved);
        // Fails again, then the prefix is withdrawn: the old route does not stay behind.
        fib.writer.broken.insert(prefix);
        block_on(fib.reconcile(&routes(&[("10.0.1.0/24", &["192.0.2.3"])])));
        fib.writer.broken.clear();
        let r = block_on(fib.reconcile(&FibRoutes::new()));
        assert_eq!((r.removed, r.failed.len()), (1, 0), "{r:?}");
        assert!(fib.writer().table.is_empty());
    }

    #[test]
    fn resync_adopts_leftovers_so_reconcile_removes_them() {
        let table = FakeTable {
            table: routes(&[
                ("10.9.0.0/16", &["192.0.2.9"]),
                ("10.0.0.0/24", &["192.0.2.1"]),
            ]),
            ..FakeTable::default()
        };
        let mut fib = Fib::new(table);
        block_on(fib.resync()).expect("resync");
        let want = routes(&[("10.0.0.0/24", &["192.0.2.1"])]);
        let r = block_on(fib.reconcile(&want));
        assert_eq!((r.replaced, r.removed), (0, 1));
        assert_eq!(fib.writer().table, want);
    }

    #[test]
    fn shutdown_removes_everything_and_reports_failures() {
        let mut fib = Fib::new(FakeTable::default());
        let want = routes(&[
            ("10.0.0.0/24", &["192.0.2.1"]),
            ("10.0.1.0/24", &["192.0.2.1"]),
        ]);
        block_on(fib.reconcile(&want));
        fib.writer.broken.insert(net("10.0.1.0/24"));
        let err = block_on(fib.shutdown()).expect_err("one removal fails");
        assert!(err.to_string().contains("10.0.1.0/24"), "{err}");
        fib.writer.broken.clear();
        block_on(fib.shutdown()).expect("retry succeeds");
        assert!(fib.writer().table.is_empty() && fib.applied().is_empty());
    }
}
