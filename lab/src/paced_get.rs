//! A paced HTTP download for tests and the demo: a client that reads its response at a fixed rate,
//! so a transfer provably spans an event (an endpoint change, an agent restart). curl's
//! `--limit-rate` cannot be trusted for that: Debian 12's curl 7.88 sometimes ignores it and
//! finishes an 8 MiB transfer meant to take 20 s in a third of a second.
//!
//! The client is a short Python script (Python is in every lab node already: the pods serve with
//! `python3 -m http.server`). It keeps its receive buffer small so the kernel cannot read far ahead
//! of the pace, and prints one line, `DL <body bytes> <HTTP status>` (status `000` when none came).

use std::path::{Path, PathBuf};

const SCRIPT: &str = r#"import socket, sys, time
from urllib.parse import urlsplit

url, rate, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
local_port = int(sys.argv[4]) if len(sys.argv) > 4 else 0
u = urlsplit(url)
body, status = 0, 0
try:
    family = socket.AF_INET6 if ":" in u.hostname else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(10)
    if local_port:
        s.bind(("", local_port))
    s.connect((u.hostname, u.port or 80))
    request = "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (u.path or "/", u.hostname)
    s.sendall(request.encode())
    sink = open(out, "wb") if out != "-" else None
    head = b""
    start = time.monotonic()
    while True:
        data = s.recv(16384)
        if not data:
            break
        if status == 0:
            head += data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                continue
            status = int(head.split(b" ", 2)[1])
            data = head[end + 4:]
        body += len(data)
        if sink:
            sink.write(data)
        ahead = body / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
except Exception as e:
    print("paced download of %s: %s" % (url, e), file=sys.stderr)
print("DL %d %03d" % (body, status), flush=True)
"#;

/// Writes the client into `dir` and returns its path (run it with [`argv`]).
pub fn install(dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join("paced_get.py");
    std::fs::write(&path, SCRIPT)?;
    Ok(path)
}

/// The command line that downloads `url` at `bytes_per_second` into `out` (`-` discards the body),
/// from `local_port` (0: any).
pub fn argv(
    script: &Path,
    url: &str,
    bytes_per_second: u64,
    out: &str,
    local_port: u16,
) -> Vec<String> {
    vec![
        "python3".to_owned(),
        script.display().to_string(),
        url.to_owned(),
        bytes_per_second.to_string(),
        out.to_owned(),
        local_port.to_string(),
    ]
}

/// One result line: `(body bytes, HTTP status)`, `None` for any other line.
pub fn parse_line(line: &str) -> Option<(usize, u16)> {
    let mut words = line.trim().strip_prefix("DL ")?.split_whitespace();
    let bytes = words.next()?.parse().ok()?;
    let status = words.next()?.parse().ok()?;
    Some((bytes, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_parse_and_others_do_not() {
        assert_eq!(parse_line("DL 8388608 200\n"), Some((8 << 20, 200)));
        assert_eq!(parse_line("DL 0 000"), Some((0, 0)));
        assert_eq!(parse_line("200"), None);
        assert_eq!(parse_line("DL x 200"), None);
    }

    /// The pace holds against a local server: 256 KiB at 512 KiB/s takes at least 0.4 s (curl
    /// 7.88's `--limit-rate` fails exactly this).
    #[test]
    fn the_pace_holds_against_a_local_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut conn, _) = listener.accept().expect("accept");
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request);
            let mut reply = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
            reply.resize(reply.len() + (256 << 10), b'x');
            let _ = conn.write_all(&reply);
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let script = install(dir.path()).expect("install");
        let url = format!("http://127.0.0.1:{port}/big.bin");
        let args = argv(&script, &url, 512 << 10, "-", 0);
        let started = std::time::Instant::now();
        let out = std::process::Command::new(&args[0])
            .args(&args[1..])
            .output()
            .expect("python3");
        let took = started.elapsed();
        server.join().expect("server");
        let line = String::from_utf8_lossy(&out.stdout);
        assert_eq!(parse_line(&line), Some((256 << 10, 200)), "{line}");
        assert!(took.as_secs_f64() >= 0.4, "finished in {took:?}");
    }
}
