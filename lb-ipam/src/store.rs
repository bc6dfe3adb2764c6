//! The standalone state file: what every service holds, persisted as JSON. This module is the
//! only one touching the file system.
//!
//! Format (version 1):
//! ```json
//! {"format": "herald.io/lb-ipam-state", "version": 1,
//!  "owner": "node-a:/etc/herald/herald.yaml", "ownerFingerprint": "fnv1a64:…",
//!  "checksum": "fnv1a64:…",
//!  "allocations": [{"namespace": "shop", "name": "web", "addresses": ["192.0.2.1"], "lost": []}]}
//! ```
//! Writes are crash-safe: a temporary file in the same directory is written and fsynced, renamed
//! over the state file, and the directory is fsynced, so a crash leaves the old or the new file,
//! never a mix. A file that does not parse, has the wrong format, version, fingerprint or
//! checksum is *corrupt*; one recorded for another owner is *foreign*. Both are refused, and
//! [`StateFile::save`] refuses to replace them: an operator must look at them first.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::allocator::Held;
use crate::error::{Error, Result};
use crate::request::ServiceKey;

/// The `format` string of a state file.
pub const STATE_FORMAT: &str = "herald.io/lb-ipam-state";
/// The version this code writes and reads.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    format: String,
    version: u32,
    owner: String,
    owner_fingerprint: String,
    checksum: String,
    allocations: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    namespace: String,
    name: String,
    addresses: Vec<IpAddr>,
    #[serde(default)]
    lost: Vec<IpAddr>,
}

/// FNV-1a, 64 bit: a stable fingerprint, not a security measure.
fn fnv1a64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}

fn checksum(records: &[Record]) -> Result<String> {
    Ok(fnv1a64(&serde_json::to_vec(records)?))
}

/// A state file owned by one Herald instance.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    owner: String,
}

impl StateFile {
    /// A handle; nothing is read until [`StateFile::load`]. `owner` identifies this instance
    /// (for example node name and configuration path) and must stay stable across restarts.
    pub fn new(path: impl Into<PathBuf>, owner: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            owner: owner.into(),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the state: `None` when the file does not exist, an error when it is corrupt or
    /// foreign (see the module header).
    pub fn load(&self) -> Result<Option<Vec<(ServiceKey, Held)>>> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::StateIo {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        self.decode(&bytes).map(Some)
    }

    /// Checks and decodes the bytes of a state file (what [`StateFile::load`] read): an error
    /// when they are corrupt or foreign.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<(ServiceKey, Held)>> {
        let doc = self.check(bytes)?;
        Ok(doc
            .allocations
            .into_iter()
            .map(|r| {
                (
                    ServiceKey::new(r.namespace, r.name),
                    Held {
                        addresses: r.addresses,
                        lost: r.lost,
                    },
                )
            })
            .collect())
    }

    fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::StateCorrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn check(&self, bytes: &[u8]) -> Result<Document> {
        let doc: Document = serde_json::from_slice(bytes)
            .map_err(|e| self.corrupt(format!("not a state document: {e}")))?;
        if doc.format != STATE_FORMAT {
            return Err(self.corrupt(format!(
                "format is {:?}, expected {STATE_FORMAT:?}",
                doc.format
            )));
        }
        if doc.version != STATE_VERSION {
            return Err(self.corrupt(format!(
                "version {} is not supported (this build reads {STATE_VERSION})",
                doc.version
            )));
        }
        if doc.owner_fingerprint != fnv1a64(doc.owner.as_bytes()) {
            return Err(self.corrupt("owner fingerprint does not match the owner"));
        }
        if doc.checksum != checksum(&doc.allocations)? {
            return Err(self.corrupt("checksum does not match the allocations"));
        }
        if doc.owner != self.owner {
            return Err(Error::StateForeign {
                path: self.path.clone(),
                expected: self.owner.clone(),
                found: doc.owner,
            });
        }
        Ok(doc)
    }

    /// Writes the state crash-safely. Refuses to replace an existing file that is corrupt or
    /// foreign.
    pub fn save(&self, allocations: &[(ServiceKey, Held)]) -> Result<()> {
        match fs::read(&self.path) {
            Ok(existing) => {
                self.check(&existing)?;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::StateIo {
                    path: self.path.clone(),
                    source,
                });
            }
        }
        let allocations: Vec<Record> = allocations
            .iter()
            .map(|(k, h)| Record {
                namespace: k.namespace.clone(),
                name: k.name.clone(),
                addresses: h.addresses.clone(),
                lost: h.lost.clone(),
            })
            .collect();
        let doc = Document {
            format: STATE_FORMAT.into(),
            version: STATE_VERSION,
            owner: self.owner.clone(),
            owner_fingerprint: fnv1a64(self.owner.as_bytes()),
            checksum: checksum(&allocations)?,
            allocations,
        };
        let mut bytes = serde_json::to_vec_pretty(&doc)?;
        bytes.push(b'\n');
        self.write_atomically(&bytes)
    }

    fn write_atomically(&self, bytes: &[u8]) -> Result<()> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::StateIo { path, source }
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = self
            .path
            .file_name()
            .ok_or_else(|| self.corrupt("state file path has no file name"))?
            .to_string_lossy()
            .into_owned();
        let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(io(&tmp))?;
            f.write_all(bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
            drop(f);
            fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&dir))
        })();
        if result.is_err() {
            // Best effort: the temporary file is ours and useless after a failure.
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(ips: &[&str]) -> Held {
        Held {
            addresses: ips.iter().map(|s| s.parse().expect("ip")).collect(),
            lost: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = StateFile::new(dir.path().join("state.json"), "node-a");
        assert!(f.load().expect("load").is_none());
        let data = vec![(
            ServiceKey::new("a", "b"),
            held(&["10.0.0.1", "2001:db8::1"]),
        )];
        f.save(&data).expect("save");
        assert_eq!(f.load().expect("load"), Some(data));
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("readdir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty(), "temporary file left behind");
    }

    #[test]
    fn corrupt_file_is_refused_and_not_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        fs::write(&path, b"{\"format\": \"herald.io/lb-ipam-state\", \"vers").expect("write");
        let f = StateFile::new(&path, "node-a");
        assert!(matches!(f.load(), Err(Error::StateCorrupt { .. })));
        assert!(matches!(f.save(&[]), Err(Error::StateCorrupt { .. })));
        assert_eq!(
            fs::read(&path).expect("read"),
            b"{\"format\": \"herald.io/lb-ipam-state\", \"vers"
        );
    }

    #[test]
    fn tampered_allocations_fail_the_checksum() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let f = StateFile::new(&path, "node-a");
        f.save(&[(ServiceKey::new("a", "b"), held(&["10.0.0.1"]))])
            .expect("save");
        let text = fs::read_to_string(&path)
            .expect("read")
            .replace("10.0.0.1", "10.0.0.2");
        fs::write(&path, text).expect("write");
        let err = f.load().expect_err("tampered");
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn foreign_file_is_refused_and_not_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        StateFile::new(&path, "node-b")
            .save(&[(ServiceKey::new("a", "b"), held(&["10.0.0.1"]))])
            .expect("save");
        let before = fs::read(&path).expect("read");
        let ours = StateFile::new(&path, "node-a");
        assert!(matches!(ours.load(), Err(Error::StateForeign { .. })));
        assert!(matches!(ours.save(&[]), Err(Error::StateForeign { .. })));
        assert_eq!(fs::read(&path).expect("read"), before);
    }

    #[test]
    fn other_formats_and_versions_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let f = StateFile::new(&path, "node-a");
        f.save(&[]).expect("save");
        let text = fs::read_to_string(&path).expect("read");
        fs::write(&path, text.replace("\"version\": 1", "\"version\": 2")).expect("write");
        assert!(
            f.load()
                .expect_err("version")
                .to_string()
                .contains("version 2")
        );
        fs::write(&path, text.replace(STATE_FORMAT, "something-else")).expect("write");
        assert!(matches!(f.load(), Err(Error::StateCorrupt { .. })));
    }
}
