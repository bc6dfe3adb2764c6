//! Code generation options for bpf-linker (which does the final LLVM codegen for the bpf target).
//!
//! - `+alu32`: 32-bit ALU instructions (kernel ≥ 5.1), fewer zero-extensions and shifts on the
//!   hot path. (rustc already passes `--cpu generic`, which bpf-linker takes only once.)
//! - `+allows-misaligned-mem-access`: header fields are read with one word load instead of a
//!   byte-by-byte sequence. The x86-64 and arm64 JITs handle misaligned packet and map-value
//!   accesses; the verifier still insists on aligned stack accesses, which LLVM keeps.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("bpf") {
        println!("cargo:rustc-link-arg=--cpu-features=+alu32,+allows-misaligned-mem-access");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
