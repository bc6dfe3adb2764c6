//! One-shot external commands (`ip`, `tc`, `vtysh`, `birdc`, ...): run to completion, capture
//! output, turn a non-zero exit into [`Error::CommandFailed`]. This is the I/O boundary for every
//! short-lived program the lab runs; long-lived daemons go through [`crate::process`].

use std::process::{Command, Stdio};

use crate::{Error, Result};

/// Renders a command line for error messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion and returns its standard output; a non-zero exit is an error that
/// carries standard error.
pub fn output(cmd: &mut Command) -> Result<String> {
    let command = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Err(Error::CommandFailed {
        command,
        status: out.status.to_string(),
        stderr: if stderr.is_empty() {
            stdout.trim().to_owned()
        } else {
            stderr
        },
    })
}

/// Runs `program args..` and returns its standard output.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    output(Command::new(program).args(args))
}

/// Runs `ip args..`.
pub fn ip(args: &[&str]) -> Result<String> {
    run("ip", args)
}

/// True when a command failure says the object is already gone, so cleanup can treat it as done.
pub fn is_not_found(err: &Error) -> bool {
    match err {
        Error::CommandFailed { stderr, .. } => {
            let s = stderr.to_ascii_lowercase();
            s.contains("cannot find device")
                || s.contains("no such file")
                || s.contains("does not exist")
                || s.contains("not found")
                || s.contains("invalid handle")
                || s.contains("cannot open network namespace")
        }
        _ => false,
    }
}
