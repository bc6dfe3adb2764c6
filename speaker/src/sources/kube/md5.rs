//! TCP MD5 keys from Secrets → the `passwordFile`s the BGP instance reads. The instance compares
//! peer configurations to decide which sessions a reload must reset, and a password file is part
//! of the peering; so each key version gets its own file name (`<addr>.<version>.key`): a rotated
//! key changes that one peer's `passwordFile` and nothing else, and an unchanged key keeps its
//! path, so unrelated sessions are never reset.
//!
//! [`KeyFiles::assign`] is the pure part (which path each peer gets); [`KeyFiles::apply`] also
//! writes the files (mode 0600, temporary file then rename, in a 0700 directory) and removes the
//! ones no longer referenced. That directory is this module's only I/O.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use super::translate::Md5Key;
use crate::config::Config;
use crate::error::{Error, Result};

/// The key files of one speaker.
#[derive(Debug)]
pub struct KeyFiles {
    dir: PathBuf,
    current: BTreeMap<IpAddr, (Md5Key, u64)>,
}

impl KeyFiles {
    /// Key files under `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            current: BTreeMap::new(),
        }
    }

    fn path(&self, peer: IpAddr, version: u64) -> PathBuf {
        self.dir.join(format!("{peer}.{version}.key"))
    }

    /// Pure: the file each peer's key lives in. A peer keeps its path while its key is
    /// unchanged; a changed key gets the next version; peers without a key are forgotten.
    pub fn assign(&mut self, keys: &BTreeMap<IpAddr, Md5Key>) -> BTreeMap<IpAddr, PathBuf> {
        self.current.retain(|peer, _| keys.contains_key(peer));
        let mut out = BTreeMap::new();
        for (peer, key) in keys {
            let version = match self.current.get(peer) {
                Some((old, v)) if old == key => *v,
                Some((_, v)) => v + 1,
                None => 1,
            };
            self.current.insert(*peer, (key.clone(), version));
            out.insert(*peer, self.path(*peer, version));
        }
        out
    }

    /// Writes the key files, points each peer of `config` with a key at its file, and removes
    /// key files no longer used.
    pub fn apply(&mut self, config: &mut Config, keys: &BTreeMap<IpAddr, Md5Key>) -> Result<()> {
        let paths = self.write(keys)?;
        if let Some(bgp) = config.bgp.as_mut() {
            for peer in &mut bgp.peers {
                peer.password_file = paths.get(&peer.address.value).cloned();
            }
        }
        Ok(())
    }

    /// Writes the key files, removes the ones no longer used, and returns each peer's file.
    pub fn write(&mut self, keys: &BTreeMap<IpAddr, Md5Key>) -> Result<BTreeMap<IpAddr, PathBuf>> {
        let paths = self.assign(keys);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| Error::io(format!("creating {}", self.dir.display()), e))?;
        for (peer, path) in &paths {
            // Compared, not just checked for existence: a file left by an earlier run of the
            // speaker may carry the same name and another key.
            if let Some((key, _)) = self.current.get(peer)
                && std::fs::read(path).ok().as_deref() != Some(key.0.as_slice())
            {
                write_private(path, &key.0)?;
            }
        }
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::io(format!("listing {}", self.dir.display()), e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let is_key = path.extension().is_some_and(|x| x == "key");
            if is_key && !paths.values().any(|p| p == &path) {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(paths)
    }
}

fn write_private(path: &Path, key: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    file.write_all(key)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming to {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[(&str, &str)]) -> BTreeMap<IpAddr, Md5Key> {
        list.iter()
            .map(|(a, k)| (a.parse().expect("ip"), Md5Key(k.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn rotation_moves_only_the_rotated_peer_to_a_new_file() {
        let mut files = KeyFiles::new("/run/k");
        let first = files.assign(&keys(&[("10.0.0.1", "a"), ("10.0.0.2", "b")]));
        let second = files.assign(&keys(&[("10.0.0.1", "a2"), ("10.0.0.2", "b")]));
        let ip1: IpAddr = "10.0.0.1".parse().expect("ip");
        let ip2: IpAddr = "10.0.0.2".parse().expect("ip");
        assert_ne!(first[&ip1], second[&ip1]);
        assert_eq!(first[&ip2], second[&ip2]);
        assert_eq!(second[&ip1], PathBuf::from("/run/k/10.0.0.1.2.key"));
        let third = files.assign(&keys(&[("10.0.0.2", "b")]));
        assert_eq!(third.len(), 1);
        let fourth = files.assign(&keys(&[("10.0.0.1", "a2"), ("10.0.0.2", "b")]));
        assert_eq!(fourth[&ip1], PathBuf::from("/run/k/10.0.0.1.1.key"));
    }

    #[test]
    fn apply_writes_private_files_and_removes_stale_ones() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let keydir = dir.path().join("md5");
        let mut files = KeyFiles::new(&keydir);
        let mut config = crate::config::parse(
            "node: {name: n, routerId: 10.0.0.9}\nbgp:\n  localASN: 65001\n  peers:\n    - {address: 10.0.0.1, asn: 65000}\n    - {address: 10.0.0.2, asn: 65000}\n",
            "t",
        )
        .expect("config");
        files
            .apply(&mut config, &keys(&[("10.0.0.1", "s3cret")]))
            .expect("apply");
        let peers = &config.bgp.as_ref().expect("bgp").peers;
        let path = peers[0]
            .password_file
            .clone()
            .expect("peer 1 has a key file");
        assert!(peers[1].password_file.is_none());
        assert_eq!(std::fs::read(&path).expect("read"), b"s3cret");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        files
            .apply(&mut config, &keys(&[("10.0.0.1", "rotated")]))
            .expect("apply");
        let new_path = config.bgp.as_ref().expect("bgp").peers[0]
            .password_file
            .clone()
            .expect("key file");
        assert_ne!(new_path, path);
        assert!(!path.exists(), "the old key file is removed");
        assert_eq!(std::fs::read(&new_path).expect("read"), b"rotated");
    }

    #[test]
    fn a_file_left_by_an_earlier_run_is_rewritten_with_the_current_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut first = KeyFiles::new(dir.path());
        let old = first.write(&keys(&[("10.0.0.1", "old")])).expect("write");
        // A restarted speaker numbers versions from 1 again: same file name, new key.
        let mut second = KeyFiles::new(dir.path());
        let new = second.write(&keys(&[("10.0.0.1", "new")])).expect("write");
        assert_eq!(old, new);
        let path = &new[&"10.0.0.1".parse::<IpAddr>().expect("ip")];
        assert_eq!(std::fs::read(path).expect("read"), b"new");
    }
}
