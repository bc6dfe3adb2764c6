//! Per-test naming and scratch space: unique namespace names (`<test>-<pid>-<n>`) so tests run in
//! parallel, and a directory for daemon configs, sockets and logs that is kept (and printed) when
//! the test panics, deleted otherwise. I/O boundary: the scratch directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use herald_lab::Netns;

use crate::{Error, Result};

/// Process-wide counter making names unique across [`TestLab`]s of one test binary.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Naming and scratch space for one test.
#[derive(Debug)]
pub struct TestLab {
    prefix: String,
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestLab {
    /// Starts a test called `test` (use the test function's name).
    pub fn new(test: &str) -> Result<Self> {
        // Namespace names are file names: keep them short and plain.
        let short: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(32)
            .collect();
        let prefix = format!(
            "ht-{short}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .map_err(|e| Error::io(Path::new("/tmp"), e))?;
        let path = dir.path().to_path_buf();
        // Daemons drop privileges (frr, bird) and must reach their sockets under this directory.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(&path, e))?;
        Ok(Self {
            prefix,
            dir: Some(dir),
            path,
        })
    }

    /// The unique prefix of every name this lab hands out.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The scratch directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// A unique name for `role` (`<prefix>-<role>`).
    pub fn name(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// Creates namespace `<prefix>-<role>`.
    pub fn netns(&self, role: &str) -> Result<Netns> {
        Ok(Netns::create(&self.name(role))?)
    }

    /// Creates (if needed) and returns `<dir>/<role>`, world-traversable for privilege-dropping daemons.
    pub fn subdir(&self, role: &str) -> Result<PathBuf> {
        let p = self.path.join(role);
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(&p, e))?;
        Ok(p)
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!(
                "herald-tests: test failed; logs kept in {}",
                dir.keep().display()
            );
        }
    }
}
