//! What a start or reload must check before it changes anything: the files the configuration
//! only names. Every BGP peer's password file must be readable and hold a usable TCP MD5 key,
//! every BFD authentication key file a usable SHA1 key (1 to 20 octets), and the L2 heartbeat key
//! file must be readable and long enough. A reload that fails here
//! leaves lb-ipam, L2 and every BGP peer as they were; the error names the file, the line and
//! the key. I/O boundary: reads those files, nothing else.

use crate::bfd::AuthKey;
use crate::bgp::io::connect::SocketOptions;
use crate::config::{Config, ConfigError};

/// Checks every file `config` (read from `origin`) refers to; the first problem is the error.
pub fn check(config: &Config, origin: &str) -> Result<(), ConfigError> {
    let invalid = |line: u64, key: String, message: String| ConfigError::Invalid {
        path: origin.to_owned(),
        line,
        key,
        message,
    };
    if let Some(bgp) = &config.bgp {
        for (index, peer) in bgp.peers.iter().enumerate() {
            if let Some(auth) = peer.bfd.as_ref().and_then(|b| b.authentication.as_ref())
                && let Err(error) = AuthKey::load(auth)
            {
                return Err(invalid(
                    peer.address.referenced.line(),
                    format!("bgp.peers[{index}].bfd.authentication.passwordFile"),
                    error.to_string(),
                ));
            }
            if peer.password_file.is_none() {
                continue;
            }
            // The eBGP flag only sets TTLs; the key is read and checked either way.
            if let Err(error) = SocketOptions::for_peer(peer, false) {
                return Err(invalid(
                    peer.address.referenced.line(),
                    format!("bgp.peers[{index}].passwordFile"),
                    error.to_string(),
                ));
            }
        }
    }
    if let Some(l2) = &config.l2
        && let Err(error) = l2.value.auth.load()
    {
        return Err(invalid(
            l2.referenced.line(),
            "l2.auth.keyFile".to_owned(),
            error.to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(peers: &str, l2: &str) -> Config {
        let yaml = format!(
            "node: {{name: n1, routerId: 10.0.0.1}}\nbgp:\n  localASN: 65001\n  peers:\n{peers}{l2}"
        );
        crate::config::parse(&yaml, "t.yaml").expect("valid config")
    }

    #[test]
    fn a_missing_password_file_names_the_peer_key_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good");
        std::fs::write(&good, "secret\n").expect("write");
        let peers = format!(
            "    - {{address: 192.0.2.1, asn: 65002, passwordFile: {}}}\n    - {{address: 192.0.2.2, asn: 65002, passwordFile: {}/missing}}\n",
            good.display(),
            dir.path().display()
        );
        let error = check(&config(&peers, ""), "t.yaml")
            .expect_err("missing file")
            .to_string();
        assert!(
            error.starts_with("t.yaml:6: bgp.peers[1].passwordFile: "),
            "{error}"
        );
        assert!(error.contains("missing"), "{error}");
    }

    #[test]
    fn a_key_longer_than_tcp_md5_allows_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = dir.path().join("long");
        std::fs::write(&long, "x".repeat(81)).expect("write");
        let peers = format!(
            "    - {{address: 192.0.2.1, asn: 65002, passwordFile: {}}}\n",
            long.display()
        );
        let error = check(&config(&peers, ""), "t.yaml")
            .expect_err("too long")
            .to_string();
        assert!(error.contains("bgp.peers[0].passwordFile"), "{error}");
    }

    #[test]
    fn bfd_key_files_are_read_and_named_with_peer_line_and_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good");
        std::fs::write(&good, "secret\n").expect("write");
        let long = dir.path().join("long");
        std::fs::write(&long, "x".repeat(21)).expect("write");
        let bfd = |file: &std::path::Path| {
            format!(
                "      bfd: {{authentication: {{type: keyedSha1, keyId: 1, passwordFile: {}}}}}\n",
                file.display()
            )
        };
        let peers = |second: &std::path::Path| {
            format!(
                "    - address: 192.0.2.1\n      asn: 65002\n{}    - address: 192.0.2.2\n      asn: 65002\n{}",
                bfd(&good),
                bfd(second)
            )
        };
        check(&config(&peers(&good), ""), "t.yaml").expect("readable keys pass");
        let missing = dir.path().join("missing");
        let error = check(&config(&peers(&missing), ""), "t.yaml")
            .expect_err("missing file")
            .to_string();
        assert!(
            error.starts_with("t.yaml:8: bgp.peers[1].bfd.authentication.passwordFile: ")
                && error.contains(&missing.display().to_string()),
            "{error}"
        );
        let error = check(&config(&peers(&long), ""), "t.yaml")
            .expect_err("key too long")
            .to_string();
        assert!(
            error.contains("bgp.peers[1].bfd.authentication.passwordFile")
                && error.contains("1 to 20"),
            "{error}"
        );
        assert!(!error.contains("xxxx"), "the key leaked: {error}");
    }

    #[test]
    fn an_unreadable_l2_key_file_names_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l2 = format!(
            "l2:\n  nodes: [{{name: n1}}, {{name: n2}}]\n  auth: {{keyFile: {}/missing}}\n",
            dir.path().display()
        );
        let error = check(&config("    []\n", &l2), "t.yaml")
            .expect_err("missing key")
            .to_string();
        assert!(error.contains("l2.auth.keyFile"), "{error}");
        assert!(error.contains("missing"), "{error}");
    }

    #[test]
    fn readable_files_pass() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good");
        std::fs::write(&good, "secret\n").expect("write");
        let peers = format!(
            "    - {{address: 192.0.2.1, asn: 65002, passwordFile: {}}}\n    - {{address: 192.0.2.2, asn: 65002}}\n",
            good.display()
        );
        check(&config(&peers, ""), "t.yaml").expect("fine");
    }
}
