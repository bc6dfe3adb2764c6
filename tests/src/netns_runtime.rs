//! Running test code inside a test's network namespace: a plain closure on a thread that has
//! entered it, or async code on a tokio runtime whose threads all live there (threads inherit
//! the namespace of the thread that spawns them, so the runtime is built on a thread moved in
//! first, and blocking-pool threads move themselves in on start).

use std::future::Future;

use tokio::runtime::{Builder, Runtime};

use crate::Netns;

/// Runs `body` to completion inside `ns`: on a current-thread runtime (`worker_threads: None`)
/// or a multi-thread one with that many workers. Panics (the test fails) if `ns` cannot be entered.
pub fn block_on_in<F: Future>(
    ns: &Netns,
    worker_threads: Option<usize>,
    body: impl FnOnce() -> F + Send,
) -> F::Output
where
    F::Output: Send,
{
    in_netns(ns, || build(ns, worker_threads).block_on(body()))
}

/// A multi-thread runtime whose workers and blocking-pool threads all live in `ns`, for tests
/// that keep it across several `block_on` calls. Only the spawned tasks run inside: the future
/// given to `block_on` itself runs on the calling thread.
pub fn runtime_in(ns: &Netns, worker_threads: usize) -> Runtime {
    in_netns(ns, || build(ns, Some(worker_threads)))
}

fn build(ns: &Netns, worker_threads: Option<usize>) -> Runtime {
    let mut builder = match worker_threads {
        None => Builder::new_current_thread(),
        Some(n) => {
            let mut b = Builder::new_multi_thread();
            let path = ns.path();
            b.worker_threads(n).on_thread_start(move || {
                // Blocking-pool threads may be spawned from a thread outside the namespace.
                herald_lab::netns::enter_at(&path).expect("enter the test namespace");
            });
            b
        }
    };
    builder.enable_all().build().expect("tokio runtime")
}

/// Runs `f` on a thread inside `ns` and returns its result ([`Netns::run_in`] for tests: failing
/// to enter the namespace fails the test).
pub fn in_netns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    ns.run_in(f).expect("enter the test namespace")
}
