//! `#[repr(C)]` map keys and values and protocol constants shared by the eBPF programs and the
//! user-space loader. `no_std`, no implicit padding.
#![no_std]
