//! The Kubernetes client of `speaker --kubernetes`: from `--kubeconfig FILE` (and `--context`),
//! else the in-cluster service account or `$KUBECONFIG` (kube's inference). Building the client
//! reads files only; the first request is the first network I/O.

use std::path::Path;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};

/// A client from `kubeconfig` (with an optional `context`), or inferred when `kubeconfig` is
/// `None`. Errors name the file.
pub async fn client(kubeconfig: Option<&Path>, context: Option<String>) -> Result<Client> {
    let options = KubeConfigOptions {
        context,
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| Error::Kube(format!("reading kubeconfig {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| Error::Kube(format!("kubeconfig {}: {e}", path.display())))?
        }
        None => kube::Config::infer().await.map_err(|e| {
            Error::Kube(format!(
                "no --kubeconfig, no in-cluster service account and no usable $KUBECONFIG: {e}"
            ))
        })?,
    };
    Client::try_from(config).map_err(|e| Error::Kube(format!("building the client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster: {server: 'https://127.0.0.1:6443', insecure-skip-tls-verify: true}\nusers:\n- name: speaker\n  user: {token: abc}\ncontexts:\n- name: lab\n  context: {cluster: lab, user: speaker, namespace: herald-system}\n- name: other\n  context: {cluster: lab, user: speaker}\ncurrent-context: lab\n";

    #[tokio::test]
    async fn kubeconfig_file_and_context_are_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, KUBECONFIG).expect("write");
        let c = client(Some(&path), None).await.expect("client");
        assert_eq!(c.default_namespace(), "herald-system");
        let c = client(Some(&path), Some("other".into()))
            .await
            .expect("client");
        assert_eq!(c.default_namespace(), "default");
        let Err(err) = client(Some(&path), Some("nope".into())).await else {
            panic!("an unknown context must be refused");
        };
        assert!(err.to_string().contains("kubeconfig"), "{err}");
    }

    #[tokio::test]
    async fn missing_kubeconfig_names_the_file() {
        let Err(err) = client(Some(Path::new("/nonexistent/kubeconfig")), None).await else {
            panic!("a missing kubeconfig must be refused");
        };
        assert!(err.to_string().contains("/nonexistent/kubeconfig"), "{err}");
    }
}
