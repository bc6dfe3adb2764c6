//! Long-lived child processes (daemons, traffic generators): spawned with their output captured to
//! log files, tracked by PID *and* start time so a recycled PID is never signalled, and stopped on
//! drop (SIGTERM, then SIGKILL after a grace period). I/O boundary: `fork/exec`, signals, `/proc`.

use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::{Error, Result, cmd};

/// How long a process gets to exit after SIGTERM before it is sent SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// A process identity that survives PID reuse: the PID plus the kernel's start time of the process
/// (`/proc/PID/stat` field 22, in clock ticks since boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    /// Kernel process id.
    pub pid: u32,
    /// Start time in clock ticks since boot.
    pub start_ticks: u64,
}

/// Reads (state letter, start ticks) from `/proc/PID/stat`; `None` when there is no such process.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 is the state, field 22 the start time: 19 fields further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

impl ProcessId {
    /// Captures the identity of the running process `pid`.
    pub fn of(pid: u32) -> Result<Self> {
        let (_, start_ticks) = proc_stat(pid).ok_or_else(|| {
            Error::io(
                format!("/proc/{pid}/stat"),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })?;
        Ok(Self { pid, start_ticks })
    }

    /// True while the same process (not a PID reuse) exists and is not a zombie.
    pub fn is_alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, start)) if start == self.start_ticks && state != 'Z')
    }

    /// Sends `signal` if the process is still the one we recorded; a vanished process is not an error.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        if !self.is_alive() {
            return Ok(());
        }
        let pid = i32::try_from(self.pid)
            .map_err(|_| Error::State(format!("pid {} out of range", self.pid)))?;
        match kill(Pid::from_raw(pid), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(source) => Err(Error::Signal {
                pid: self.pid,
                signal: signal.to_string(),
                source,
            }),
        }
    }

    /// SIGTERM (and SIGCONT, in case it is stopped), then SIGKILL after `grace`; returns once the
    /// process is gone. For processes that are not our children (their parent reaps them).
    pub fn terminate(&self, grace: Duration) -> Result<()> {
        self.signal(Signal::SIGTERM)?;
        self.signal(Signal::SIGCONT)?;
        let deadline = Instant::now() + grace;
        while self.is_alive() && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
        if self.is_alive() {
            self.signal(Signal::SIGKILL)?;
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.is_alive() && Instant::now() < deadline {
                sleep(Duration::from_millis(20));
            }
        }
        if self.is_alive() {
            return Err(Error::State(format!("pid {} survived SIGKILL", self.pid)));
        }
        Ok(())
    }
}

/// A spawned child process, stopped (SIGTERM, then SIGKILL) when dropped. Its standard output and
/// error go to `<log_dir>/<name>.stdout.log` and `<name>.stderr.log`. It runs in its own process
/// group so a Ctrl-C aimed at the test or runner does not reach it; the guard decides its fate.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Option<Child>,
    id: ProcessId,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
}

fn log_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

impl ChildProcess {
    /// Spawns `command`, naming it `name` (used for log file names and messages).
    pub fn spawn(name: &str, mut command: Command, log_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(log_dir).map_err(|e| Error::io(log_dir, e))?;
        let stdout_log = log_dir.join(format!("{name}.stdout.log"));
        let stderr_log = log_dir.join(format!("{name}.stderr.log"));
        command
            .stdin(Stdio::null())
            .stdout(log_file(&stdout_log)?)
            .stderr(log_file(&stderr_log)?)
            .process_group(0);
        let child = command.spawn().map_err(|source| Error::Spawn {
            command: cmd::describe(&command),
            source,
        })?;
        let pid = child.id();
        // The child may already have exited (bad arguments); keep a usable identity anyway.
        let id = ProcessId::of(pid).unwrap_or(ProcessId {
            pid,
            start_ticks: 0,
        });
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            id,
            stdout_log,
            stderr_log,
        })
    }

    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Kernel PID.
    pub fn pid(&self) -> u32 {
        self.id.pid
    }

    /// PID plus start time.
    pub fn id(&self) -> ProcessId {
        self.id
    }

    /// Path of the captured standard output.
    pub fn stdout_log(&self) -> &Path {
        &self.stdout_log
    }

    /// Path of the captured standard error.
    pub fn stderr_log(&self) -> &Path {
        &self.stderr_log
    }

    /// The last `max_bytes` of both logs, for failure messages.
    pub fn log_tail(&self, max_bytes: usize) -> String {
        let tail = |p: &Path| {
            let s = std::fs::read_to_string(p).unwrap_or_default();
            let cut = s.len().saturating_sub(max_bytes);
            let cut = (cut..s.len())
                .find(|i| s.is_char_boundary(*i))
                .unwrap_or(s.len());
            s[cut..].to_owned()
        };
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            tail(&self.stdout_log),
            self.name,
            tail(&self.stderr_log)
        )
    }

    /// True while the process has not exited (reaps it if it has).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => self.id.is_alive(),
        }
    }

    /// Sends a signal (e.g. SIGSTOP to freeze a peer, SIGCONT to thaw it, SIGKILL to crash it).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        self.id.signal(signal)
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let name = self.name.clone();
        let child = self.child.as_mut().ok_or_else(|| {
            Error::State(format!("{name} is detached; its exit status is not ours"))
        })?;
        crate::wait_until_ok(&format!("{name} to exit"), timeout, || {
            match child.try_wait() {
                Ok(Some(status)) => Ok(status),
                Ok(None) => Err("still running".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    /// Stops the process: SIGTERM (+SIGCONT), SIGKILL after [`STOP_GRACE`], and reaps it.
    /// Returns its exit status, or `None` when it had already been reaped or was detached.
    pub fn stop(&mut self) -> Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(Some(status));
        }
        self.id.signal(Signal::SIGTERM)?;
        self.id.signal(Signal::SIGCONT)?;
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(Some(status)),
                Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(20)),
                _ => break,
            }
        }
        // Killing our own child by handle cannot hit a recycled PID: it is unreaped until wait().
        let _ = child.kill();
        child
            .wait()
            .map(Some)
            .map_err(|e| Error::io(format!("/proc/{}", self.id.pid), e))
    }

    /// Gives up ownership: the process keeps running after this guard is gone. Returns its identity
    /// so it can be recorded and terminated later with [`ProcessId::terminate`].
    pub fn detach(mut self) -> ProcessId {
        self.child = None;
        self.id
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!(
                "herald-lab: stopping {} (pid {}): {e}",
                self.name, self.id.pid
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_kills_the_child_and_logs_are_captured() {
        let dir = tempfile::tempdir().ok();
        let dir = dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_else(std::env::temp_dir);
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hello; echo oops >&2; exec sleep 60"]);
        let mut child = ChildProcess::spawn("sleeper", cmd, &dir).expect("spawn sh");
        let id = child.id();
        assert!(child.is_running());
        crate::wait_until("greeting in log", Duration::from_secs(5), || {
            child.log_tail(100).contains("hello").then_some(())
        })
        .expect("log captured");
        assert!(child.log_tail(100).contains("oops"));
        drop(child);
        assert!(!id.is_alive(), "process survived drop");
    }

    #[test]
    fn recycled_pid_is_not_alive() {
        let me = ProcessId::of(std::process::id()).expect("own stat");
        assert!(me.is_alive());
        let other = ProcessId {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(!other.is_alive());
    }
}
