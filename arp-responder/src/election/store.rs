//! The fencing/membership store: one lease per *node* (never per service), renewed periodically.
//! The set of nodes with unexpired leases is the membership that quorum is counted against, and a
//! node whose own renewals fail stops answering when its lease runs out. Backends:
//! [`StaticStore`] (membership fixed by configuration, no Kubernetes, no shared storage),
//! [`FileStore`] (lease files in a shared directory) and, later (issue 9), Kubernetes Leases.
//! This module is the election's only I/O boundary.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// The members a store reported.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Membership {
    /// Names of nodes whose leases are valid.
    pub members: BTreeSet<String>,
}

/// A boxed future returned by store operations.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A store of per-node leases. API traffic is one renewal (and one read of the member list) per
/// node per renew interval: it grows with the number of nodes, not of services.
pub trait MembershipStore: Send + Sync {
    /// Renews `node`'s lease for `lease` and returns the current membership.
    fn renew<'a>(&'a self, node: &'a str, lease: Duration) -> StoreFuture<'a, Membership>;
    /// Gives up `node`'s lease (clean shutdown), so peers need not wait for it to expire.
    fn release<'a>(&'a self, node: &'a str) -> StoreFuture<'a, ()>;
}

/// Membership fixed by configuration; renewals always succeed. Without a shared store a node
/// cannot be fenced by lease expiry, so split-brain safety rests on the quorum rule alone, and a
/// cluster that lost half its nodes stops answering until the configuration is changed.
#[derive(Clone, Debug)]
pub struct StaticStore {
    members: BTreeSet<String>,
}

impl StaticStore {
    /// A store whose membership is always `members`.
    pub fn new(members: impl IntoIterator<Item = String>) -> Self {
        StaticStore {
            members: members.into_iter().collect(),
        }
    }
}

impl MembershipStore for StaticStore {
    fn renew<'a>(&'a self, _node: &'a str, _lease: Duration) -> StoreFuture<'a, Membership> {
        Box::pin(async move {
            Ok(Membership {
                members: self.members.clone(),
            })
        })
    }

    fn release<'a>(&'a self, _node: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// Lease files `<dir>/<node>.lease`, each holding the expiry as Unix milliseconds, written
/// atomically (temporary file then rename). Fits nodes that share a directory (tests on one host,
/// a shared mount); expiry uses wall clocks, which must be in sync as for Kubernetes Leases.
#[derive(Clone, Debug)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// A store in `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore { dir: dir.into() }
    }

    fn renew_blocking(dir: PathBuf, node: String, lease: Duration) -> Result<Membership> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let now = unix_ms(SystemTime::now());
        let expiry = now + lease.as_millis() as u64;
        let tmp = dir.join(format!(".{node}.lease.tmp"));
        let path = dir.join(format!("{node}.lease"));
        std::fs::write(&tmp, expiry.to_string())
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| Error::io(format!("renaming to {}", path.display()), e))?;
        let mut members = BTreeSet::new();
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str().and_then(|n| n.strip_suffix(".lease")) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            // A file being replaced may vanish between listing and reading: skip it this round.
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            if text.trim().parse::<u64>().is_ok_and(|exp| exp > now) {
                members.insert(name.to_owned());
            }
        }
        Ok(Membership { members })
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl MembershipStore for FileStore {
    fn renew<'a>(&'a self, node: &'a str, lease: Duration) -> StoreFuture<'a, Membership> {
        let (dir, node) = (self.dir.clone(), node.to_owned());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || Self::renew_blocking(dir, node, lease))
                .await
                .map_err(|e| Error::Store(format!("renewal task failed: {e}")))?
        })
    }

    fn release<'a>(&'a self, node: &'a str) -> StoreFuture<'a, ()> {
        let path = self.dir.join(format!("{node}.lease"));
        Box::pin(async move {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_store_lists_unexpired_leases_and_drops_released_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::new(dir.path());
        store
            .renew("b", Duration::from_secs(5))
            .await
            .expect("renew b");
        let m = store
            .renew("a", Duration::from_secs(5))
            .await
            .expect("renew a");
        assert_eq!(
            m.members,
            ["a", "b"].iter().map(|s| (*s).to_owned()).collect()
        );
        std::fs::write(dir.path().join("c.lease"), "1").expect("write expired lease");
        store.release("b").await.expect("release");
        let m = store
            .renew("a", Duration::from_secs(5))
            .await
            .expect("renew a");
        assert_eq!(m.members, ["a"].iter().map(|s| (*s).to_owned()).collect());
    }
}
