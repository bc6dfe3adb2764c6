//! The graceful-restart state file: its age at start tells whether this is a restart (RFC 4724
//! R bit); it is touched while the instance runs.

use std::path::PathBuf;

use crate::config::BgpConfig;
use crate::error::{Error, Result};

pub(super) fn state_file(bgp: &BgpConfig) -> Option<PathBuf> {
    bgp.state_dir.as_ref().map(|d| d.join("graceful-restart"))
}

/// A state file younger than the longest time a peer keeps our routes means we are restarting
/// (RFC 4724: set R): the restart time, plus the long-lived stale time with LLGR (RFC 9494).
pub(super) fn detect_restart(bgp: &BgpConfig) -> Result<bool> {
    let Some(path) = state_file(bgp) else {
        return Ok(false);
    };
    let max_restart = bgp
        .peers
        .iter()
        .filter(|p| p.graceful_restart.enabled)
        .map(|p| {
            let long_lived = p
                .graceful_restart
                .long_lived
                .map_or(0, |l| l.stale_time_seconds.0);
            u64::from(p.graceful_restart.restart_time_seconds.0) + u64::from(long_lived)
        })
        .max();
    let restarting = match (std::fs::metadata(&path), max_restart) {
        (Ok(meta), Some(max)) => meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age.as_secs() <= max),
        _ => false,
    };
    touch_state_file(&path)?;
    Ok(restarting)
}

pub(super) fn touch_state_file(path: &std::path::Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    std::fs::write(path, format!("{stamp}\n"))
        .map_err(|e| Error::io(format!("write {}", path.display()), e))
}
