//! Herald's XDP load balancer and TC DSR programs, built for `bpfel-unknown-none` by the loader's
//! build script. On the host this is an empty binary so workspace tooling can still look at it.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(
    target_arch = "bpf",
    expect(
        clippy::needless_borrows_for_generic_args,
        reason = "aya-ebpf's map methods take `impl Borrow<K>`; keys are passed by reference so \
                  each stays in one stack slot instead of counting on LLVM to elide a by-value \
                  copy (BPF allows 512 bytes of stack for a whole call chain)"
    )
)]

#[cfg(target_arch = "bpf")]
mod backend;
#[cfg(target_arch = "bpf")]
mod csum;
#[cfg(target_arch = "bpf")]
mod geneve;
#[cfg(target_arch = "bpf")]
mod icmp;
#[cfg(target_arch = "bpf")]
mod lb;
#[cfg(target_arch = "bpf")]
mod maglev;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod mss;
#[cfg(target_arch = "bpf")]
mod nat;
#[cfg(target_arch = "bpf")]
mod parse;

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::{
        bindings::xdp_action,
        macros::{classifier, xdp},
        programs::{TcContext, XdpContext},
    };

    /// The load balancer on the node's uplink.
    #[xdp]
    pub fn herald_xdp_lb(ctx: XdpContext) -> u32 {
        crate::lb::run(&ctx)
    }

    /// Benchmark twin of [`herald_xdp_lb`]: runs the same code, then undoes the encapsulation's
    /// `bpf_xdp_adjust_head`, so that `BPF_PROG_TEST_RUN` with a repeat count (which reruns the
    /// program on the same buffer) sees the original frame every time. With a backend whose
    /// address and port equal the service's, the DNAT rewrites bytes to their own values and the
    /// frame stays a service frame. Costs one helper call more than the real path (the pushed
    /// length comes from the encapsulation plan, not from the kernel).
    #[cfg(feature = "bench")]
    #[xdp]
    pub fn herald_xdp_lb_bench(ctx: XdpContext) -> u32 {
        let (verdict, pushed) = crate::lb::run_pushed(&ctx);
        if pushed > 0 && pushed < 256 {
            // SAFETY: plain helper call on our own context.
            unsafe { aya_ebpf::helpers::bpf_xdp_adjust_head(ctx.ctx, pushed as i32) };
        }
        verdict
    }

    /// Passes every packet: the peer-side program that lets native XDP_TX frames leave a veth
    /// (veth-based labs and tests need it, so it is not benchmark-only), and the baseline for
    /// per-packet cost.
    #[xdp]
    pub fn herald_xdp_pass(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_PASS
    }

    /// Drops every frame: the sink for benchmark traffic coming back to the generator.
    #[cfg(feature = "bench")]
    #[xdp]
    pub fn herald_xdp_drop(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_DROP
    }

    /// Bounces every frame back out (the plain XDP_TX baseline for veth rates).
    #[cfg(feature = "bench")]
    #[xdp]
    pub fn herald_xdp_tx(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_TX
    }

    /// Backend node ingress: Geneve decapsulation and reverse-NAT entries.
    #[classifier]
    pub fn herald_tc_ingress(ctx: TcContext) -> i32 {
        crate::backend::ingress(&ctx)
    }

    /// Backend node egress: replies leave with the service address.
    #[classifier]
    pub fn herald_tc_egress(ctx: TcContext) -> i32 {
        crate::backend::egress(&ctx)
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
        loop {}
    }
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
