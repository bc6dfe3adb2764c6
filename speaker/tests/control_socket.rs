//! End to end: the control socket of a real `herald agent` started under `umask 000` is mode
//! 0600, a client sending a 10 MiB line without a newline is cut off without the agent's memory
//! growing, and an unprivileged uid is refused. Needs root and `setpriv`.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The agent, killed on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no socket at {}", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_control_socket_is_private_bounded_and_checks_credentials() {
    let dir = std::env::temp_dir().join(format!("herald-control-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let socket = dir.join("speaker.sock");
    let config = dir.join("speaker.yaml");
    std::fs::write(
        &config,
        format!(
            "node: {{ name: node, routerId: 10.0.0.1 }}\napi:\n  controlSocket: {}\n",
            socket.display()
        ),
    )
    .expect("config");
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["agent", "--config"])
        .arg(&config)
        .stdout(std::fs::File::create(dir.join("agent.log")).expect("log"))
        .stderr(std::fs::File::create(dir.join("agent.err")).expect("log"))
        .spawn();
    nix::sys::stat::umask(old);
    let agent = Agent(child.expect("spawn agent"));
    wait_for(&socket);

    // 1. Private whatever the umask.
    let mode = std::fs::metadata(&socket)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");

    // 2. A 10 MiB line without a newline: the connection is closed, memory stays bounded.
    let before = rss_kib(agent.0.id());
    let mut stream = UnixStream::connect(&socket).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let chunk = vec![b'x'; 1024 * 1024];
    let mut sent = 0usize;
    for _ in 0..10 {
        match stream.write_all(&chunk) {
            Ok(()) => sent += chunk.len(),
            Err(_) => break,
        }
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.contains("longer than 65536 bytes"),
        "after {sent} bytes: {answer:?}"
    );
    let after = rss_kib(agent.0.id());
    assert!(
        after < before + 4 * 1024,
        "agent RSS grew from {before} KiB to {after} KiB"
    );

    // 3. An unprivileged uid is refused (even with the socket's mode opened for it).
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_herald"))
        .args(["bgp", "peers", "--socket"])
        .arg(&socket)
        .output()
        .expect("setpriv");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && text.contains("permission denied: uid 65534"),
        "{text}"
    );

    // Root still gets answers.
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["bgp", "peers", "--socket"])
        .arg(&socket)
        .output()
        .expect("herald");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("permission denied"), "{text}");
    drop(agent);
    let _ = std::fs::remove_dir_all(&dir);
}
