//! Writes the speaker's CRDs (generated from `speaker::sources::kube::crd`) into `deploy/crds/`,
//! one file per CRD: `cargo run -p speaker --example gen-crds [-- DIR]`. The test
//! `checked_in_crds_are_current` fails when a checked-in file differs from what this writes.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crds")));
    for (file, yaml) in speaker::sources::kube::crd::crds_yaml()? {
        let path = dir.join(file);
        std::fs::write(&path, yaml)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
