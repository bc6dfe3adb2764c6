//! Which local program stands for which container image: one table, so adding an image (or the
//! speaker, once it exists) is one row. Pure lookup; finding the speaker binary reads the filesystem.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A local program a node runs in its namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// zebra + bgpd (+ bfdd/staticd per the bound `daemons` file) with the bound `frr.conf`.
    Frr,
    /// Herald's speaker with its bound config.
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
/// Container path of the speaker's config (what the speaker image's Dockerfile expects).
pub const SPEAKER_CONF: &str = "/etc/herald/speaker.yaml";

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

/// Finds the speaker binary: `$HERALD_SPEAKER`, then `speaker` beside the running executable (same
/// cargo target directory), then `$PATH`.
pub fn speaker_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("HERALD_SPEAKER") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::NotAvailable {
                what: "speaker".to_owned(),
                reason: format!("HERALD_SPEAKER={} is not a file", p.display()),
            })
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("speaker")));
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("speaker"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    beside
        .into_iter()
        .chain(on_path)
        .find(|p| Path::new(p).is_file())
        .ok_or_else(|| Error::NotAvailable {
            what: "speaker".to_owned(),
            reason:
                "no speaker binary found (HERALD_SPEAKER, beside `lab`, or on PATH); build it with \
                 `cargo build -p speaker` — nodes with image herald/speaker cannot start without it"
                    .to_owned(),
        })
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
    }
}
