//! Which local program stands for which container image: one table, so adding an image (or the
//! speaker, once it exists) is one row. Pure lookup; finding the speaker binary reads the filesystem.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A local program a node runs in its namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// zebra + bgpd (+ bfdd/staticd per the bound `daemons` file) with the bound `frr.conf`.
    Frr,
    /// Herald's node image: the agent `herald agent` when `/etc/herald/herald.yaml` is bound
    /// (BGP, lb-ipam, L2 and the datapath, as its file says), or the standalone L2 announcer
    /// `herald-l2 run` when `/etc/herald/l2.yaml` is bound (at least one of them).
    Speaker,
    /// A plain Linux image: nothing runs unless the node has a `cmd`.
    Plain,
    /// Not a container (bridge nodes).
    None,
}

impl Program {
    /// Short name for status output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Frr => "frr",
            Self::Speaker => "speaker",
            Self::Plain => "linux",
            Self::None => "-",
        }
    }
}

/// Container path of FRR's integrated config (required for FRR images).
pub const FRR_CONF: &str = "/etc/frr/frr.conf";
/// Container path of FRR's daemons file (optional; bgpd only without it).
pub const FRR_DAEMONS: &str = "/etc/frr/daemons";
/// Container path of the agent's config (what the image's entrypoint expects).
pub const AGENT_CONF: &str = "/etc/herald/herald.yaml";
/// Container path of the L2 announcer's config (`herald-l2 run --config`), also in the image.
pub const L2_CONF: &str = "/etc/herald/l2.yaml";

/// Image repositories (without registry-independent tag) and the program each stands for. A rule
/// matches the image's repository exactly or as a path suffix (`quay.io/frrouting/frr:8.4` matches
/// `frrouting/frr`).
const IMAGES: &[(&str, Program)] = &[
    ("frrouting/frr", Program::Frr),
    ("herald/speaker", Program::Speaker),
    ("alpine", Program::Plain),
    ("busybox", Program::Plain),
    ("debian", Program::Plain),
    ("ubuntu", Program::Plain),
    ("python", Program::Plain),
    ("nicolaka/netshoot", Program::Plain),
    ("wbitt/network-multitool", Program::Plain),
    ("hellt/network-multitool", Program::Plain),
];

/// The image's repository without tag or digest (`quay.io/frrouting/frr:8.4.1` → `quay.io/frrouting/frr`).
fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        // A colon after the last '/' starts a tag; before it, it is a registry port.
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    }
}

/// The program for `image`, if the runner knows it.
pub fn program_for(image: &str) -> Option<Program> {
    let repo = repository(image);
    let repo = repo.strip_prefix("library/").unwrap_or(repo);
    IMAGES
        .iter()
        .find(|(name, _)| repo == *name || repo.ends_with(&format!("/{name}")))
        .map(|(_, p)| *p)
}

/// The known image names, for error messages.
pub fn known_images() -> String {
    IMAGES
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds a Herald binary: `$<env_var>`, then `<name>` beside the running executable (same cargo
/// target directory), then `$PATH`.
fn herald_binary(name: &str, env_var: &str, hint: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::NotAvailable {
                what: name.to_owned(),
                reason: format!("{env_var}={} is not a file", p.display()),
            })
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)));
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    beside
        .into_iter()
        .chain(on_path)
        .find(|p| Path::new(p).is_file())
        .ok_or_else(|| Error::NotAvailable {
            what: name.to_owned(),
            reason: format!(
                "no {name} binary found ({env_var}, beside `lab`, or on PATH); build it with \
                 `{hint}`"
            ),
        })
}

/// Finds the agent binary: `$HERALD_BIN`, then `herald` beside the running executable (same
/// cargo target directory), then `$PATH`.
pub fn herald_binary_path() -> Result<PathBuf> {
    herald_binary(
        "herald",
        "HERALD_BIN",
        "cargo build -p speaker` — nodes with image herald/speaker cannot start without it",
    )
}

/// Finds the agent binary and checks that it has the `agent` command the image's entrypoint
/// uses.
pub fn agent_binary() -> Result<PathBuf> {
    let bin = herald_binary_path()?;
    let probe = std::process::Command::new(&bin)
        .args(["agent", "--help"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match probe {
        Ok(s) if s.success() => Ok(bin),
        Ok(_) => Err(Error::NotAvailable {
            what: "herald agent".to_owned(),
            reason: format!("{} has no `agent` command", bin.display()),
        }),
        Err(e) => Err(Error::Spawn {
            command: format!("{} agent --help", bin.display()),
            source: e,
        }),
    }
}

/// Finds the L2 announcer: `$HERALD_L2`, then `herald-l2` beside `lab`, then `$PATH`.
pub fn l2_binary() -> Result<PathBuf> {
    herald_binary(
        "herald-l2",
        "HERALD_L2",
        "cargo build -p arp-responder` — speaker-image nodes with an l2.yaml bind need it",
    )
}

/// Rewrites the container paths of `binds` (container path, host copy) where they appear in a
/// node's `exec`/`cmd` line, so a line written for the container (`cat /etc/herald/l2.yaml`) reads
/// the runner's copy. A path matches only as a whole path: followed by the end of the line, a
/// `/`, whitespace, a quote or one of `;|&)<>:,=`. Longer container paths win over their prefixes.
pub fn rewrite_bind_paths(line: &str, binds: &[(String, PathBuf)]) -> String {
    let mut order: Vec<&(String, PathBuf)> = binds.iter().collect();
    order.sort_by_key(|(c, _)| std::cmp::Reverse(c.len()));
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    'scan: while !rest.is_empty() {
        for (container, host) in &order {
            let boundary_before = out.is_empty()
                || out.ends_with(|c: char| c.is_whitespace() || "'\"=:(,".contains(c));
            if boundary_before
                && let Some(after) = rest.strip_prefix(container.as_str())
                && after
                    .chars()
                    .next()
                    .is_none_or(|c| c.is_whitespace() || "/'\";|&)<>:,=".contains(c))
            {
                out.push_str(&host.to_string_lossy());
                rest = after;
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_map_by_repository_ignoring_registry_and_tag() {
        assert_eq!(
            program_for("quay.io/frrouting/frr:8.4.1"),
            Some(Program::Frr)
        );
        assert_eq!(program_for("frrouting/frr"), Some(Program::Frr));
        assert_eq!(program_for("herald/speaker:latest"), Some(Program::Speaker));
        assert_eq!(
            program_for("localhost:5000/herald/speaker"),
            Some(Program::Speaker)
        );
        assert_eq!(
            program_for("docker.io/library/alpine:3.20"),
            Some(Program::Plain)
        );
        assert_eq!(program_for("alpine@sha256:abcd"), Some(Program::Plain));
        assert_eq!(program_for("ghcr.io/nokia/srlinux"), None);
        assert_eq!(program_for("myfrr"), None);
        assert_eq!(program_for("python:3.12-alpine"), Some(Program::Plain));
    }

    #[test]
    fn bound_container_paths_in_lines_become_host_copies() {
        let binds = vec![
            (
                "/srv/www".to_owned(),
                PathBuf::from("/run/l/n1/binds/srv/www"),
            ),
            (
                "/srv/www2".to_owned(),
                PathBuf::from("/run/l/n1/binds/srv/www2"),
            ),
            (
                "/etc/herald/l2.yaml".to_owned(),
                PathBuf::from("/x/l2.yaml"),
            ),
        ];
        assert_eq!(
            rewrite_bind_paths("cd /srv/www && python3 -m http.server", &binds),
            "cd /run/l/n1/binds/srv/www && python3 -m http.server"
        );
        assert_eq!(
            rewrite_bind_paths("ls /srv/www2/x '/srv/www'", &binds),
            "ls /run/l/n1/binds/srv/www2/x '/run/l/n1/binds/srv/www'"
        );
        // Not whole paths: left alone.
        assert_eq!(
            rewrite_bind_paths("ls /srv/wwwx /opt/srv/www", &binds),
            "ls /srv/wwwx /opt/srv/www"
        );
        assert_eq!(
            rewrite_bind_paths("--config=/etc/herald/l2.yaml;", &binds),
            "--config=/x/l2.yaml;"
        );
    }
}
