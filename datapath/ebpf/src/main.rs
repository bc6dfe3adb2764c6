//! XDP load balancer and TC DSR programs. Built for `bpfel-unknown-none` by the loader's build script.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(not(target_arch = "bpf"))]
fn main() {}
