//! The on-disk record of what `lab up` created, written *before* each resource is created (so a
//! crash mid-way still leaves a record) and replaced atomically. `lab down` tears down from it.
//! I/O boundary: `<state-root>/<lab>/state.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::process::ProcessId;
use crate::{Error, Result};

/// One thing `up` created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Resource {
    /// A network namespace (its links, bridges and addresses go with it).
    Netns {
        /// Node name.
        node: String,
        /// Namespace name.
        name: String,
    },
    /// A long-running process in a node.
    Process {
        /// Node name.
        node: String,
        /// Program name (`zebra`, `bgpd`, `cmd`, `speaker`).
        name: String,
        /// PID and start time.
        id: ProcessId,
    },
    /// A bpf filesystem mounted for the lab's datapath agents to pin their maps in.
    BpfFs {
        /// Mount point.
        path: PathBuf,
    },
}

/// A node as `status` and `exec` need it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Node name.
    pub name: String,
    /// Program name (`frr`, `speaker`, `linux`, `-`).
    pub program: String,
    /// Namespace name.
    pub netns: String,
    /// The node's environment (for `exec`).
    pub env: std::collections::BTreeMap<String, String>,
}

/// A program a node should run but that was left out by `up` with
/// [`UpOptions::skip_unavailable`](super::UpOptions), because it is not available on this machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailable {
    /// Node name.
    pub node: String,
    /// Program name (`speaker`, `herald-l2`).
    pub program: String,
    /// Why it is not available.
    pub reason: String,
}

/// What a lab consists of on this host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// Lab name.
    pub name: String,
    /// Topology file it was brought up from.
    pub file: PathBuf,
    /// Created resources, in creation order.
    pub resources: Vec<Resource>,
    /// The nodes, for `status` and `exec`.
    pub nodes: Vec<NodeRecord>,
    /// True once `up` finished.
    pub complete: bool,
    /// Programs left out because they are not available (yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<Unavailable>,
}

/// The state directory of one lab.
#[derive(Clone, Debug)]
pub struct LabDir {
    dir: PathBuf,
}

impl LabDir {
    /// `<root>/<lab>`.
    pub fn new(root: &Path, lab: &str) -> Self {
        Self {
            dir: root.join(lab),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Mount point of the lab's bpf filesystem (maps pinned by the nodes' datapath agents).
    pub fn bpffs(&self) -> PathBuf {
        self.dir.join("bpffs")
    }

    /// Per-node run directory.
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.join("nodes").join(node)
    }

    fn file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Loads the state, if the lab has any.
    pub fn load(&self) -> Result<Option<LabState>> {
        let f = self.file();
        match std::fs::read_to_string(&f) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::State(format!("{}: {e}", f.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&f, e)),
        }
    }

    /// Writes the state atomically (temp file + rename).
    pub fn save(&self, state: &LabState) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let f = self.file();
        let tmp = self.dir.join("state.json.tmp");
        let text = serde_json::to_string_pretty(state).map_err(|e| Error::State(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &f).map_err(|e| Error::io(&f, e))
    }

    /// Appends `resource` and saves.
    pub fn record(&self, state: &mut LabState, resource: Resource) -> Result<()> {
        state.resources.push(resource);
        self.save(state)
    }

    /// Removes the lab directory (state, configs, logs).
    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&self.dir, e)),
            _ => Ok(()),
        }
    }

    /// Labs with a state directory under `root`.
    pub fn list(root: &Path) -> Result<Vec<String>> {
        let Ok(entries) = std::fs::read_dir(root) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(|err| Error::io(root, err))?;
            if e.path().join("state.json").exists() {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_disk() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = LabDir::new(tmp.path(), "lab1");
        assert_eq!(dir.load().expect("load"), None);
        let mut st = LabState {
            name: "lab1".into(),
            ..LabState::default()
        };
        dir.record(
            &mut st,
            Resource::Netns {
                node: "a".into(),
                name: "clab-lab1-a".into(),
            },
        )
        .expect("record");
        dir.record(
            &mut st,
            Resource::Process {
                node: "a".into(),
                name: "cmd".into(),
                id: ProcessId {
                    pid: 42,
                    start_ticks: 7,
                },
            },
        )
        .expect("record");
        assert_eq!(dir.load().expect("load"), Some(st));
        assert_eq!(
            LabDir::list(tmp.path()).expect("list"),
            vec!["lab1".to_owned()]
        );
        dir.remove().expect("remove");
        assert!(LabDir::list(tmp.path()).expect("list").is_empty());
    }
}
