//! Builds the eBPF programs in `ebpf/` for the bpf target with aya-build, so the loader can embed
//! them. `AYA_BUILD_SKIP=1` skips it (the loader then fails at run time with a clear error).

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    // aya-build runs `cargo build` in the current directory; the eBPF crate is its own workspace
    // (excluded from ours) with its own lock file and bpf-friendly profile, so build from there.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = std::path::Path::new(&manifest_dir).join("ebpf");
    std::env::set_current_dir(&ebpf_dir).context("entering datapath/ebpf")?;
    // Stable rustc with RUSTC_BOOTSTRAP=1 lets aya-build pass `-Z build-std=core`.
    // SAFETY: build scripts are single-threaded at this point; nothing else reads the environment.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "stable".to_string());
    println!("cargo:rerun-if-env-changed=RUSTUP_TOOLCHAIN");
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.clone() + "/common"
    );
    let root = ebpf_dir.to_string_lossy().into_owned();
    // Our `bench` feature turns on the eBPF crate's: the benchmark-only programs are compiled
    // in only then (cargo gives a build with other features its own OUT_DIR, so the production
    // object and the benchmark one never overwrite each other).
    let features: &[&str] = if std::env::var_os("CARGO_FEATURE_BENCH").is_some() {
        &["bench"]
    } else {
        &[]
    };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "datapath-ebpf",
            root_dir: &root,
            features,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )?;
    // With AYA_BUILD_SKIP nothing was built: leave an empty object so the crate still compiles
    // and the loader reports "not built" at run time.
    let out =
        std::path::Path::new(&std::env::var("OUT_DIR").context("OUT_DIR")?).join("herald-datapath");
    if !out.exists() {
        std::fs::write(&out, []).context("writing the empty eBPF placeholder")?;
    }
    Ok(())
}
