//! Who may use the control socket, and how much of the agent one client may hold: the socket is
//! created mode 0600 (0660 with `api.controlSocketGroup`) whatever the umask, every connection's
//! peer credentials (SO_PEERCRED) are checked, request lines are capped at
//! [`MAX_REQUEST_LINE`] bytes and at most [`MAX_CONNECTIONS`] connections are served at once.
//!
//! I/O boundary: the socket file (bind, chmod, chown, rename), `/etc/group` and
//! `/proc/<pid>/status` (a peer's supplementary groups).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};
use tokio::net::{UnixListener, UnixStream};

use crate::error::{Error, Result};

/// The longest request line accepted (bytes, without the newline).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Connections served at once; more are answered with an error and closed.
pub const MAX_CONNECTIONS: usize = 32;

/// Who may connect: root, the socket's owner and, when configured, members of its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The socket file's owner (the agent's uid).
    pub owner: u32,
    /// The socket's group (`api.controlSocketGroup`), whose members may connect too.
    pub group: Option<u32>,
}

/// Binds the control socket at `path` with mode 0600 (0660 and group `group` when given) before
/// anyone can connect: the socket is bound inside a fresh 0700 directory, its mode and group set
/// there, and only then renamed into place, so the umask never shows.
pub fn bind(path: &Path, group: Option<&str>) -> Result<(UnixListener, Access)> {
    let gid = group.map(resolve_group).transpose()?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("remove stale {}", path.display()), e)),
    }
    let staging = staging_dir(path);
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|e| Error::io(format!("create {}", staging.display()), e))?;
    let result = bind_in(&staging, path, gid);
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn staging_dir(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "control".to_owned());
    path.with_file_name(format!(".{name}.{}.staging", std::process::id()))
}

fn bind_in(staging: &Path, path: &Path, gid: Option<u32>) -> Result<(UnixListener, Access)> {
    let temporary = staging.join("sock");
    let listener = UnixListener::bind(&temporary)
        .map_err(|e| Error::io(format!("bind {}", temporary.display()), e))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(&temporary, None, Some(gid))
            .map_err(|e| Error::io(format!("chgrp {} to gid {gid}", temporary.display()), e))?;
    }
    let mode = if gid.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {} {mode:o}", temporary.display()), e))?;
    let owner = std::fs::metadata(&temporary)
        .map_err(|e| Error::io(format!("stat {}", temporary.display()), e))?
        .uid();
    std::fs::rename(&temporary, path).map_err(|e| {
        Error::io(
            format!("move {} to {}", temporary.display(), path.display()),
            e,
        )
    })?;
    Ok((listener, Access { owner, group: gid }))
}

/// A group name from `/etc/group`, or a numeric gid.
fn resolve_group(group: &str) -> Result<u32> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let text = std::fs::read_to_string("/etc/group")
        .map_err(|e| Error::io("read /etc/group (api.controlSocketGroup)", e))?;
    group_gid(&text, group).ok_or_else(|| {
        Error::Control(format!(
            "api.controlSocketGroup: no group {group:?} in /etc/group"
        ))
    })
}

fn group_gid(etc_group: &str, name: &str) -> Option<u32> {
    etc_group.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

/// Checks the connecting process's credentials; the error is sent to the client.
pub fn check_peer(stream: &UnixStream, access: Access) -> std::result::Result<(), String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("permission denied: cannot read the peer's credentials: {e}"))?;
    let uid = cred.uid();
    if uid == 0 || uid == access.owner {
        return Ok(());
    }
    if let Some(group) = access.group {
        let supplementary = cred.pid().map(supplementary_groups).unwrap_or_default();
        if cred.gid() == group || supplementary.contains(&group) {
            return Ok(());
        }
    }
    Err(format!(
        "permission denied: uid {uid} may not use the control socket (only root, uid {}{})",
        access.owner,
        access
            .group
            .map(|g| format!(" and members of gid {g}"))
            .unwrap_or_default()
    ))
}

/// The `Groups:` of `/proc/<pid>/status` (empty when unreadable).
fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Groups:"))
                .map(|g| {
                    g.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
        })
        .unwrap_or_default()
}

/// One read request line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line (without its newline).
    Request(String),
    /// The client closed the connection.
    End,
    /// The line exceeds [`MAX_REQUEST_LINE`]; the connection must be closed.
    TooLong,
}

/// Reads one line of at most [`MAX_REQUEST_LINE`] bytes: never buffers more than that, however
/// long the client's line is.
pub async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Line> {
    let mut buf = Vec::new();
    let limit = u64::try_from(MAX_REQUEST_LINE + 1).unwrap_or(u64::MAX);
    let n = (&mut *reader)
        .take(limit)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| Error::io("read control request", e))?;
    if n == 0 {
        return Ok(Line::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > MAX_REQUEST_LINE {
        return Ok(Line::TooLong);
    }
    String::from_utf8(buf)
        .map(Line::Request)
        .map_err(|_| Error::Control("control request is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_resolve_from_etc_group() {
        let text = "root:x:0:\nherald:x:998:alice,bob\n";
        assert_eq!(group_gid(text, "herald"), Some(998));
        assert_eq!(group_gid(text, "nobody"), None);
    }

    #[tokio::test]
    async fn a_line_longer_than_the_cap_is_refused_without_buffering_it() {
        let long = vec![b'x'; 10 * MAX_REQUEST_LINE];
        let mut reader = tokio::io::BufReader::new(&long[..]);
        assert_eq!(read_line(&mut reader).await.expect("read"), Line::TooLong);
        let mut ok = tokio::io::BufReader::new(&b"{\"request\":\"peers\"}\nrest"[..]);
        assert_eq!(
            read_line(&mut ok).await.expect("read"),
            Line::Request("{\"request\":\"peers\"}".into())
        );
        assert_eq!(
            read_line(&mut ok).await.expect("read"),
            Line::Request("rest".into())
        );
        assert_eq!(read_line(&mut ok).await.expect("read"), Line::End);
    }

    #[tokio::test]
    async fn the_socket_is_private_whatever_the_umask() {
        let dir = std::env::temp_dir().join(format!("herald-ctl-{}", std::process::id()));
        let path = dir.join("speaker.sock");
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let bound = bind(&path, None);
        nix::sys::stat::umask(old);
        let (_listener, access) = bound.expect("bind");
        let mode = std::fs::metadata(&path).expect("stat").mode() & 0o7777;
        assert_eq!(mode, 0o600, "mode {mode:o}");
        assert_eq!(access.group, None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
