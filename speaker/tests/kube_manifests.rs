//! `deploy/` checks (no API server needed): the generated CRDs are current; every manifest and
//! every object `kubectl kustomize` renders (base and overlays, offline) parses into its
//! k8s-openapi type or our CRD type *without losing a field* (so a typo or a wrong field fails);
//! and the bgp-ecmp example CRs translate into the same BGP set-up as the lab's standalone files.

#![cfg(feature = "kubernetes")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use lb_ipam::crd::LoadBalancerIPPool;
use serde_json::{Value, json};
use speaker::sources::kube::crd::{
    BGPAdvertisement, BGPClusterConfig, BGPNodeConfigOverride, BGPNodeStatus, BGPPeerConfig,
    L2AnnouncementPolicy, crds_yaml,
};
use speaker::sources::kube::{Identity, Snapshot, translate};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

#[test]
fn checked_in_crds_are_current() {
    for (file, generated) in crds_yaml().expect("render") {
        let path = deploy().join("crds").join(file);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "{} is stale: run `cargo run -p speaker --example gen-crds`",
            path.display()
        );
    }
}

#[test]
fn crds_carry_cilium_field_names_and_cel_rules() {
    let all: String = crds_yaml()
        .expect("render")
        .into_iter()
        .map(|(_, y)| y)
        .collect();
    for field in [
        "nodeSelector",
        "bgpInstances",
        "localASN",
        "localPort",
        "peerAddress",
        "peerASN",
        "peerConfigRef",
        "peerPort",
        "connectRetryTimeSeconds",
        "holdTimeSeconds",
        "keepAliveTimeSeconds",
        "authSecretRef",
        "restartTimeSeconds",
        "ebgpMultihop",
        "advertisementType",
        "aggregationLengthIPv4",
        "aggregationLengthIPv6",
        "wellKnown",
        "localPreference",
        "routerID",
        "serviceSelector",
        "loadBalancerIPs",
        "externalIPs",
        "interfaces",
        // Our additions.
        "bfd",
        "fibImport",
        "med",
        "asPathPrepend",
    ] {
        assert!(all.contains(&format!("{field}:")), "no field {field}");
    }
    assert!(all.contains("x-kubernetes-validations"));
    assert!(all.contains("rule: self == 0 || self >= 3"));
}

/// True when every field of `original` is in `parsed` with the same value (types may add
/// defaults, but must not drop or change anything written in the manifest).
fn subset(original: &Value, parsed: &Value, at: &str) -> Result<(), String> {
    match (original, parsed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let here = format!("{at}.{k}");
                let other = b
                    .get(k)
                    .ok_or_else(|| format!("{here}: unknown field (dropped by the type)"))?;
                subset(v, other, &here)?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                subset(x, y, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => Ok(()),
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{at}: {a} became {b}")),
    }
}

fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> Result<(), String> {
    let parsed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&parsed).map_err(|e| e.to_string())?;
    subset(doc, &back, "")
}

/// Parses one object into the type its apiVersion/kind names.
fn check_object(doc: &Value) -> Result<(), String> {
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    match (api, kind) {
        ("v1", "Namespace") => typed::<Namespace>(doc),
        ("v1", "ServiceAccount") => typed::<ServiceAccount>(doc),
        ("v1", "Service") => typed::<Service>(doc),
        ("v1", "ConfigMap") => {
            typed::<ConfigMap>(doc)?;
            // The datapath overlay's section must be one the agent accepts.
            match doc["data"]["datapath.yaml"].as_str() {
                Some(text) => datapath::DatapathConfig::parse(text, "ConfigMap datapath.yaml")
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            }
        }
        ("apps/v1", "Deployment") => typed::<Deployment>(doc),
        ("apps/v1", "DaemonSet") => typed::<DaemonSet>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => typed::<ClusterRole>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => typed::<ClusterRoleBinding>(doc),
        ("rbac.authorization.k8s.io/v1", "Role") => typed::<Role>(doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => typed::<RoleBinding>(doc),
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") => {
            typed::<ValidatingAdmissionPolicy>(doc)
        }
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") => {
            typed::<ValidatingAdmissionPolicyBinding>(doc)
        }
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            typed::<CustomResourceDefinition>(doc)
        }
        ("herald.io/v1alpha1", "BGPClusterConfig") => typed::<BGPClusterConfig>(doc),
        ("herald.io/v1alpha1", "BGPPeerConfig") => typed::<BGPPeerConfig>(doc),
        ("herald.io/v1alpha1", "BGPAdvertisement") => typed::<BGPAdvertisement>(doc),
        ("herald.io/v1alpha1", "BGPNodeConfigOverride") => typed::<BGPNodeConfigOverride>(doc),
        ("herald.io/v1alpha1", "L2AnnouncementPolicy") => typed::<L2AnnouncementPolicy>(doc),
        ("herald.io/v1alpha1", "BGPNodeStatus") => typed::<BGPNodeStatus>(doc),
        ("herald.io/v1alpha1", "LoadBalancerIPPool") => typed::<LoadBalancerIPPool>(doc),
        _ => Err(format!("no type known for {api} {kind}")),
    }
}

fn documents(text: &str, origin: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("{origin}: not YAML: {e}"))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read deploy dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn every_manifest_parses_into_its_type() {
    let mut files = Vec::new();
    yaml_files(&deploy(), &mut files);
    files.sort();
    let mut checked = 0;
    let mut errors = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let name = file.display().to_string();
        for doc in documents(&text, &name) {
            if doc["kind"] == "Kustomization" {
                continue;
            }
            // JSON 6902 patches of overlays are lists of operations.
            if let Value::Array(ops) = &doc {
                for op in ops {
                    if !(op["op"].is_string()
                        && op["path"].as_str().is_some_and(|p| p.starts_with('/')))
                    {
                        errors.push(format!("{name}: not a JSON patch operation: {op}"));
                    }
                }
                continue;
            }
            if let Err(e) = check_object(&doc) {
                errors.push(format!(
                    "{name}: {} {}: {e}",
                    doc["kind"], doc["metadata"]["name"]
                ));
            }
            checked += 1;
        }
    }
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(checked >= 25, "only {checked} objects found under deploy/");
}

fn kustomize(dir: &Path) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl must be installed (kubectl kustomize renders deploy/ offline)");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

#[test]
fn kustomize_renders_base_and_overlays_offline_into_valid_objects() {
    for (dir, expect_kinds) in [
        (
            "",
            vec![
                ("DaemonSet", 1),
                ("Deployment", 1),
                ("CustomResourceDefinition", 7),
            ],
        ),
        (
            "overlays/bgp-ecmp",
            vec![
                ("BGPClusterConfig", 3),
                ("BGPNodeConfigOverride", 3),
                ("Service", 1),
            ],
        ),
        (
            "overlays/datapath",
            vec![("ConfigMap", 1), ("DaemonSet", 1)],
        ),
    ] {
        let rendered = kustomize(&deploy().join(dir));
        let docs = documents(&rendered, dir);
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for doc in &docs {
            if let Err(e) = check_object(doc) {
                panic!("{dir}: {} {}: {e}", doc["kind"], doc["metadata"]["name"]);
            }
            *kinds
                .entry(doc["kind"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        for (kind, n) in expect_kinds {
            assert_eq!(kinds.get(kind).copied(), Some(n), "{dir}: {kinds:?}");
        }
        let ds = docs
            .iter()
            .find(|d| d["kind"] == "DaemonSet")
            .expect("speaker DaemonSet");
        let spec = &ds["spec"]["template"]["spec"];
        assert_eq!(spec["hostNetwork"], json!(true));
        let caps = &spec["containers"][0]["securityContext"]["capabilities"];
        assert_eq!(caps["drop"], json!(["ALL"]));
        let added: Vec<&str> = caps["add"]
            .as_array()
            .expect("caps")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        // Probes on the agent's loopback health endpoint, the port its flags name.
        let container = &spec["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            args.contains(&"--metrics-address=127.0.0.1:9963"),
            "{args:?}"
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &container[probe]["httpGet"];
            assert_eq!(
                (
                    get["host"].as_str(),
                    get["path"].as_str(),
                    get["port"].as_u64()
                ),
                (Some("127.0.0.1"), Some(path), Some(9963)),
                "{dir}: {probe}"
            );
        }
        // lb-ipam is not host-networked: its probes hit the pod IP on the port its flag opens.
        if let Some(lb) = docs
            .iter()
            .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "herald-lb-ipam")
        {
            let c = &lb["spec"]["template"]["spec"]["containers"][0];
            assert!(
                c["args"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!("--health-address=0.0.0.0:9964"))),
                "{dir}: {}",
                c["args"]
            );
            assert_eq!(
                c["ports"][0],
                json!({"name": "health", "containerPort": 9964, "protocol": "TCP"})
            );
            for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
                let get = &c[probe]["httpGet"];
                assert_eq!(
                    (
                        get["host"].as_str(),
                        get["path"].as_str(),
                        get["port"].as_str()
                    ),
                    (None, Some(path), Some("health")),
                    "{dir}: lb-ipam {probe}"
                );
            }
        }
        if dir == "overlays/datapath" {
            assert_eq!(
                added,
                ["NET_BIND_SERVICE", "NET_ADMIN", "NET_RAW", "BPF", "PERFMON"]
            );
            assert!(
                args.contains(&"--datapath-config=/etc/herald/datapath.yaml"),
                "{args:?}"
            );
        } else {
            assert_eq!(added, ["NET_BIND_SERVICE", "NET_ADMIN", "NET_RAW"]);
        }
    }
}

#[test]
fn rbac_is_least_privilege() {
    let rendered = kustomize(&deploy());
    let docs = documents(&rendered, "deploy");
    let rules = |kind: &str, name: &str| -> Vec<Value> {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .and_then(|d| d["rules"].as_array().cloned())
            .unwrap_or_else(|| panic!("{kind} {name} missing"))
    };
    for (kind, name) in [
        ("ClusterRole", "herald-speaker"),
        ("Role", "herald-speaker"),
        ("ClusterRole", "herald-lb-ipam"),
        ("Role", "herald-lb-ipam"),
    ] {
        for rule in rules(kind, name) {
            let verbs: Vec<&str> = rule["verbs"]
                .as_array()
                .expect("verbs")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(!verbs.contains(&"*"), "{kind} {name}: {rule}");
            // The one update: lb-ipam's leader Lease, by name.
            let leader_lease = (kind, name) == ("Role", "herald-lb-ipam")
                && rule["resourceNames"] == json!(["herald-lb-ipam"]);
            assert!(
                !verbs.contains(&"update") || leader_lease,
                "{kind} {name}: {rule}"
            );
            assert!(
                !rule["resources"]
                    .as_array()
                    .expect("resources")
                    .contains(&json!("*"))
            );
        }
    }
    // Secrets only in the speaker's namespace (a Role), never cluster-wide.
    let cluster = rules("ClusterRole", "herald-speaker");
    assert!(cluster.iter().all(|r| {
        !r["resources"]
            .as_array()
            .expect("r")
            .contains(&json!("secrets"))
    }));
    let ns = rules("Role", "herald-speaker");
    assert!(ns.iter().any(|r| {
        r["resources"]
            .as_array()
            .expect("r")
            .contains(&json!("secrets"))
    }));
    assert!(ns.iter().any(|r| {
        r["resources"]
            .as_array()
            .expect("r")
            .contains(&json!("leases"))
    }));
}

/// The speaker's writes are scoped to its own node by a ValidatingAdmissionPolicy
/// (`deploy/speaker/node-scoped-writes.yaml`). No API server runs here, so this is a structural
/// check of the rendered base: the policy exists, is bound with `Deny`, matches the two
/// resources and the speaker's ServiceAccount, and its CEL reads the node from the token's
/// `authentication.kubernetes.io/node-name` extra and the name from `object` (CREATE, UPDATE)
/// or `oldObject` (DELETE). The CEL itself is evaluated only by a real API server.
#[test]
fn speaker_writes_are_scoped_to_its_node_by_an_admission_policy() {
    const POLICY: &str = "herald-speaker-node-scoped-writes";
    let rendered = kustomize(&deploy());
    let docs = documents(&rendered, "deploy");
    let find = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == POLICY)
            .unwrap_or_else(|| panic!("{kind} {POLICY} not rendered by the base"))
    };
    let policy = find("ValidatingAdmissionPolicy");
    let binding = find("ValidatingAdmissionPolicyBinding");
    for doc in [policy, binding] {
        check_object(doc).unwrap_or_else(|e| panic!("{}: {e}", doc["kind"]));
    }

    // Bound, enforcing, cluster-wide (no param, no selector narrowing it away).
    assert_eq!(binding["spec"]["policyName"], json!(POLICY));
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    assert!(binding["spec"]["matchResources"].is_null());
    assert_eq!(policy["spec"]["failurePolicy"], json!("Fail"));

    // Matches both resources (and the status subresource) for every write verb.
    let rules = policy["spec"]["matchConstraints"]["resourceRules"]
        .as_array()
        .expect("resourceRules");
    for (group, resource) in [
        ("herald.io", "bgpnodestatuses"),
        ("herald.io", "bgpnodestatuses/status"),
        ("coordination.k8s.io", "leases"),
    ] {
        let rule = rules
            .iter()
            .find(|r| {
                r["apiGroups"] == json!([group])
                    && r["resources"]
                        .as_array()
                        .is_some_and(|a| a.contains(&json!(resource)))
            })
            .unwrap_or_else(|| panic!("no rule for {group} {resource}"));
        assert_eq!(
            rule["operations"],
            json!(["CREATE", "UPDATE", "DELETE"]),
            "{resource}"
        );
    }

    // Only the speaker's ServiceAccount is concerned.
    let conditions = policy["spec"]["matchConditions"]
        .as_array()
        .expect("matchConditions");
    assert!(
        conditions.iter().any(|c| c["expression"].as_str().is_some_and(|e| e
            .contains(r#"request.userInfo.username == "system:serviceaccount:herald-system:herald-speaker""#))),
        "{conditions:?}"
    );
    let sa = docs
        .iter()
        .find(|d| d["kind"] == "ServiceAccount" && d["metadata"]["name"] == "herald-speaker")
        .expect("speaker ServiceAccount");
    assert_eq!(sa["metadata"]["namespace"], json!("herald-system"));

    // The CEL: node from the token, name from object or oldObject, Lease name as the agent's.
    let cel: String = ["variables", "validations"]
        .iter()
        .flat_map(|k| policy["spec"][k].as_array().expect(k).iter())
        .filter_map(|v| v["expression"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        r#"has(request.userInfo.extra)"#,
        r#""authentication.kubernetes.io/node-name" in request.userInfo.extra"#,
        r#"request.operation == "DELETE" ? oldObject.metadata.name : object.metadata.name"#,
        r#"request.resource.resource == "leases""#,
        &format!(
            r#""{}" + variables.nodeName"#,
            speaker::sources::kube::lease::LEASE_PREFIX
        ),
        r#"variables.nodeName != """#,
        "variables.objectName == variables.ownName",
    ] {
        assert!(cel.contains(needle), "policy CEL lacks `{needle}`:\n{cel}");
    }
}

#[test]
fn bgp_ecmp_example_reproduces_the_lab() {
    let text = std::fs::read_to_string(deploy().join("examples/bgp-ecmp/bgp.yaml")).expect("read");
    let mut snap = Snapshot::default();
    for doc in documents(&text, "bgp.yaml") {
        match doc["kind"].as_str().unwrap_or_default() {
            "BGPClusterConfig" => snap
                .cluster_configs
                .push(serde_json::from_value(doc).expect("cc")),
            "BGPPeerConfig" => snap
                .peer_configs
                .push(serde_json::from_value(doc).expect("pc")),
            "BGPAdvertisement" => snap
                .advertisements
                .push(serde_json::from_value(doc).expect("ad")),
            "BGPNodeConfigOverride" => snap
                .overrides
                .push(serde_json::from_value(doc).expect("ov")),
            other => panic!("unexpected {other}"),
        }
    }
    let svc_text =
        std::fs::read_to_string(deploy().join("examples/bgp-ecmp/service.yaml")).expect("read");
    for doc in documents(&svc_text, "service.yaml") {
        if doc["kind"] == "Service" {
            let mut svc: Service = serde_json::from_value(doc).expect("service");
            // What lb-ipam writes for the annotation herald.io/ips: 10.200.0.10.
            svc.status = Some(
                serde_json::from_value(
                    json!({"loadBalancer": {"ingress": [{"ip": "10.200.0.10"}]}}),
                )
                .expect("status"),
            );
            snap.services.push(svc);
        }
    }
    for n in 1..=3 {
        snap.nodes.push(
            serde_json::from_value::<Node>(json!({
                "metadata": {"name": format!("node{n}"), "labels": {"kubernetes.io/hostname": format!("node{n}")}},
                "spec": {"podCIDRs": [format!("10.244.{n}.0/24")]}
            }))
            .expect("node"),
        );
    }
    for n in 1..=3 {
        let me = Identity {
            node_name: format!("node{n}"),
            namespace: "herald-system".into(),
            external_ips: Default::default(),
        };
        let desired = translate(&me, &snap);
        assert!(
            desired.problems.is_empty(),
            "node{n}: {:?}",
            desired.problems
        );
        let lab_path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../lab/containerlab/bgp-ecmp/node{n}/herald.yaml"));
        let lab = speaker::config::load(&lab_path).expect("lab config");
        assert_eq!(desired.config.node.name, lab.node.name);
        assert_eq!(desired.config.node.router_id, lab.node.router_id);
        assert_eq!(desired.config.node.pod_cidrs, lab.node.pod_cidrs);
        let (ours, theirs) = (
            desired.config.bgp.as_ref().expect("bgp"),
            lab.bgp.as_ref().expect("lab bgp"),
        );
        assert_eq!(ours.local_asn, theirs.local_asn);
        assert_eq!(ours.peers.len(), theirs.peers.len());
        for (p, q) in ours.peers.iter().zip(&theirs.peers) {
            assert_eq!(p.name, q.name);
            assert_eq!(p.address.value, q.address.value);
            assert_eq!(p.asn, q.asn);
            assert_eq!(p.local_address, q.local_address);
            assert_eq!(p.timers.hold_time_seconds, q.timers.hold_time_seconds);
            assert_eq!(
                p.timers.connect_retry_time_seconds,
                q.timers.connect_retry_time_seconds
            );
        }
        // The lab announces the pod CIDR and the LoadBalancer IP lb-ipam gives default/web from
        // its pool (10.200.0.10, the pool's first address); here the same kinds of
        // advertisement, and the address comes from the Service's status.
        let kinds: Vec<String> = desired
            .advertisements
            .iter()
            .map(|a| a.kind.to_string())
            .collect();
        assert_eq!(kinds, ["PodCIDR", "LoadBalancerIP"]);
        let lab_kinds: Vec<String> = theirs
            .advertisements
            .iter()
            .map(|a| a.value.kind.to_string())
            .collect();
        assert_eq!(kinds, lab_kinds);
        assert!(
            format!("{:?}", lab.ipam).contains("10.200.0.10"),
            "the lab's pool starts at the example's address"
        );
        assert!(lab.services.iter().any(|s| s.value.name == "web"));
        assert_eq!(
            desired
                .allocations
                .values()
                .flatten()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["10.200.0.10"]
        );
    }
}

#[test]
fn daemonset_flags_are_accepted_by_the_speaker_and_its_paths_are_mounted() {
    let rendered = kustomize(&deploy());
    let docs = documents(&rendered, "deploy");
    let ds = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("speaker DaemonSet");
    let container = &ds["spec"]["template"]["spec"]["containers"][0];
    // The kubelet expands $(VAR) from the container's env (fieldRefs here).
    let values = BTreeMap::from([("NODE_NAME", "node1"), ("POD_NAMESPACE", "herald-system")]);
    for env in container["env"].as_array().expect("env") {
        let name = env["name"].as_str().expect("name");
        assert!(
            env.get("value").is_some() || values.contains_key(name),
            "env {name} has no value in this test"
        );
    }
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| {
            let mut a = a.as_str().expect("string arg").to_owned();
            for (k, v) in &values {
                a = a.replace(&format!("$({k})"), v);
            }
            a
        })
        .collect();
    assert_eq!(args[..2], ["agent", "--kubernetes"]);
    // The flags parse (clap exits 2 on a usage error); the run then stops at the kubeconfig.
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(&args)
        .args(["--kubeconfig", "/nonexistent/kubeconfig"])
        .env_remove("NODE_NAME")
        .env_remove("POD_NAMESPACE")
        .output()
        .expect("run the speaker binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/kubeconfig"), "{stderr}");

    // Where the runtime writes by default is mounted (the root filesystem is read-only).
    let mounts: Vec<PathBuf> = container["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["mountPath"].as_str().map(PathBuf::from))
        .collect();
    let cfg = speaker::daemon::kube::RuntimeConfig::new(Identity {
        node_name: "node1".into(),
        namespace: "herald-system".into(),
        external_ips: Default::default(),
    });
    let state = cfg.state_dir.clone().expect("state dir");
    for path in [&cfg.key_dir, &cfg.api.control_socket, &state] {
        assert!(
            mounts.iter().any(|m| path.starts_with(m)),
            "{} is on no volume ({mounts:?})",
            path.display()
        );
    }
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"],
        json!(true)
    );
}
