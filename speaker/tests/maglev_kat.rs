//! `herald datapath maglev` prints the table the datapath library builds (the library itself is
//! checked against independently computed tables in `datapath/tests/maglev_kat.rs`), and refuses
//! a table size that is not one of Cilium's primes with the size named.

use std::process::Command;

use datapath::maglev::{self, Backend, Seed};

fn cli_table(m: u32, seed: &str, backends: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args([
        "datapath",
        "maglev",
        "--table-size",
        &m.to_string(),
        "--seed",
        seed,
    ]);
    for b in backends {
        cmd.args(["--backend", b]);
    }
    cmd.output().expect("run herald")
}

#[test]
fn cli_prints_the_library_table() {
    let cases: [(u32, &str, &[&str]); 3] = [
        (
            251,
            maglev::DEFAULT_SEED,
            &["10.0.0.1:80/TCP", "10.0.0.2:80/TCP", "10.0.0.3:80/TCP"],
        ),
        (
            1021,
            "AAAAAAAAAAAAAAAA",
            &["10.0.0.1:80/TCP@1", "10.0.0.2:80/TCP@100"],
        ),
        (
            509,
            maglev::DEFAULT_SEED,
            &["[fd00::1]:8080/UDP", "10.9.9.9:53/UDP"],
        ),
    ];
    for (m, seed, backends) in cases {
        let out = cli_table(m, seed, backends);
        assert!(out.status.success(), "{out:?}");
        let printed: Vec<u32> = String::from_utf8(out.stdout)
            .expect("utf8")
            .lines()
            .map(|l| l.parse().expect("slot"))
            .collect();
        let parsed: Vec<Backend> = backends
            .iter()
            .map(|b| b.parse().expect("backend"))
            .collect();
        let want = maglev::build(m, &Seed::from_base64(seed).expect("seed"), &parsed)
            .expect("library table");
        assert_eq!(printed, want.slots(), "M={m} {backends:?}");
    }
}

#[test]
fn cli_rejects_bad_table_size() {
    let out = cli_table(1000, maglev::DEFAULT_SEED, &["10.0.0.1:80/TCP"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("table size 1000"));
}
