//! Known-answer tests: Maglev tables computed independently by `maglev_kat.py` (Cilium's method
//! with the `mmh3` package) must equal ours.

use std::path::PathBuf;

use datapath::maglev::{self, Backend, Seed};

struct Case {
    name: String,
    m: u32,
    seed: String,
    backends: Vec<String>,
    table: Vec<u32>,
}

fn cases() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/maglev");
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("vector dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("vector file");
        let mut case = Case {
            name: path.display().to_string(),
            m: 0,
            seed: String::new(),
            backends: Vec::new(),
            table: Vec::new(),
        };
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (k, v) = line.split_once(' ').expect("key value line");
            match k {
                "m" => case.m = v.parse().expect("m"),
                "seed" => case.seed = v.to_string(),
                "backend" => case.backends.push(v.to_string()),
                "table" => case.table = v.split(' ').map(|s| s.parse().expect("slot")).collect(),
                other => panic!("unknown key {other} in {}", path.display()),
            }
        }
        out.push(case);
    }
    assert!(out.len() >= 5, "vector files missing");
    out
}

#[test]
fn library_matches_independent_tables() {
    for case in cases() {
        let seed = Seed::from_base64(&case.seed).expect("seed");
        let backends: Vec<Backend> = case
            .backends
            .iter()
            .map(|b| b.parse().expect("backend"))
            .collect();
        let table = maglev::build(case.m, &seed, &backends).expect("build");
        assert_eq!(table.len(), case.m as usize, "{}", case.name);
        assert_eq!(table.slots(), case.table.as_slice(), "{}", case.name);
    }
}

#[test]
fn bad_table_size_is_rejected_with_the_size() {
    let backends = ["10.0.0.1:80/TCP".parse().expect("backend")];
    let e = maglev::build(1000, &Seed::default(), &backends).expect_err("1000 is not a prime");
    assert!(e.to_string().contains("table size 1000"), "{e}");
}
