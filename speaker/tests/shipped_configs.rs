//! Every agent file shipped with the lab (`lab/containerlab/*/node*/herald.yaml`) is read the
//! same way by both programs that read it: the agent (`speaker::config::parse`) and
//! `lb-ipam standalone` (`lb_ipam::standalone::parse_config`, which skips the sections the agent
//! owns but refuses unknown top-level keys). A top-level section added to the agent's file and
//! not to lb-ipam's list fails here, not in an operator's hands.

use std::path::PathBuf;

fn shipped_agent_files() -> Vec<PathBuf> {
    let labs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lab/containerlab");
    let mut files = Vec::new();
    for topology in std::fs::read_dir(&labs).expect("lab/containerlab") {
        let topology = topology.expect("entry").path();
        let Ok(nodes) = std::fs::read_dir(&topology) else {
            continue;
        };
        for node in nodes {
            let file = node.expect("entry").path().join("herald.yaml");
            if file.is_file() {
                files.push(file);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_shipped_agent_file_parses_for_the_agent_and_for_lb_ipam_standalone() {
    let files = shipped_agent_files();
    assert!(files.len() >= 8, "too few shipped agent files: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let origin = file.display().to_string();
        if let Err(e) = speaker::config::parse(&text, &origin) {
            panic!("the agent refuses {origin}: {e}");
        }
        if let Err(e) = lb_ipam::standalone::parse_config(&text, &origin) {
            panic!("lb-ipam standalone refuses {origin}: {e}");
        }
    }
}
