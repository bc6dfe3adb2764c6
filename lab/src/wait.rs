//! Polling helpers with deadlines, for conditions observed from outside (session Established, a
//! route in a RIB, a process gone). Pure control flow; the probes supplied by callers do the I/O.

use std::fmt::Display;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// Calls `probe` until it returns `Some`, or fails with [`Error::Timeout`] naming `what` after
/// `timeout`. Polls quickly at first (20 ms) and backs off to 250 ms.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T> {
    wait_until_ok(what, timeout, || probe().ok_or("not yet"))
}

/// Like [`wait_until`], for probes that fail with an error; the last error is reported on timeout.
pub fn wait_until_ok<T, E: Display>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> std::result::Result<T, E>,
) -> Result<T> {
    let start = Instant::now();
    let mut interval = Duration::from_millis(20);
    loop {
        let last = match probe() {
            Ok(v) => return Ok(v),
            Err(e) => e.to_string(),
        };
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::Timeout {
                what: what.to_owned(),
                waited,
                last: Some(last),
            });
        }
        sleep(interval.min(timeout - waited));
        interval = (interval * 2).min(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_the_first_some() {
        let mut n = 0;
        let v = wait_until("n reaches 3", Duration::from_secs(5), || {
            n += 1;
            (n >= 3).then_some(n)
        });
        assert_eq!(v.ok(), Some(3));
    }

    #[test]
    fn wait_until_ok_times_out_with_last_error() {
        let err = wait_until_ok::<(), _>("never", Duration::from_millis(60), || Err("still no"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("never") && err.contains("still no"), "{err}");
    }
}
