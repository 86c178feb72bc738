//! Issue 26: the Kubernetes manifests in `deploy/kubernetes/`. They pass the Kubernetes schemas
//! (`kubernetes-validate --strict`, 1.29 and the newest schema it ships) and `yamllint --strict`;
//! every pipeline in a ConfigMap passes `siemrelay validate` with exactly the environment its pod
//! gives it; and what a schema cannot see is checked here: siemrelay containers are hardened,
//! probed on /healthz and /readyz at the admin port, sized, keep their state on a volume, have
//! a grace period above `shutdown_timeout`, and a NetworkPolicy admits no one to a receiver.

use serde_yaml::Value;
use siemrelay_e2e::python;
use siemrelay_e2e::siemrelay_bin;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

fn manifest_files() -> Vec<PathBuf> {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 4, "manifests: {files:?}");
    files
}

/// One document of a manifest file.
struct Doc {
    file: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }
}

fn documents() -> Vec<Doc> {
    let mut docs = Vec::new();
    for path in manifest_files() {
        let text = std::fs::read_to_string(&path).expect("manifest");
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = <Value as serde::Deserialize>::deserialize(document)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            if !value.is_null() {
                docs.push(Doc {
                    file: file.clone(),
                    value,
                });
            }
        }
    }
    docs
}

fn python_module(module: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(python())
        .arg("-m")
        .arg(module)
        .args(args)
        .args(manifest_files())
        .current_dir(repo())
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !text.contains("No module named"),
        "{module} is not installed: run `bash scripts/setup-test-env.sh` (tests/python/requirements.txt lists it): {text}"
    );
    (output.status.success(), text)
}

#[test]
fn manifests_pass_kubernetes_validate_strict_for_1_29_and_the_newest_schema() {
    let resources = documents().len();
    for version in [Some("1.29.0"), None] {
        let mut args = vec!["--strict"];
        if let Some(version) = version {
            args.extend(["--kubernetes-version", version]);
        }
        let (ok, text) = python_module("kubernetes_validate", &args);
        let passed = text.lines().filter(|l| l.contains(" passed for ")).count();
        assert!(
            ok && passed == resources && !text.contains("WARN") && !text.contains("ERROR"),
            "kubernetes-validate {args:?}: {passed} of {resources} resources passed:\n{text}"
        );
        println!(
            "kubernetes-validate --strict ({}): {passed} resources passed",
            version.unwrap_or("newest schema")
        );
    }
}

#[test]
fn manifests_pass_yamllint_strict() {
    let config = repo().join("deploy/kubernetes/.yamllint.yaml");
    let (ok, text) = python_module(
        "yamllint",
        &["--strict", "-c", config.to_str().expect("utf-8")],
    );
    assert!(ok, "yamllint --strict:\n{text}");
}

/// A pod template and what it gets from the other documents.
struct Workload<'a> {
    doc: &'a Doc,
    pod: &'a Value,
}

impl Workload<'_> {
    fn all() -> Vec<(String, String, Value)> {
        documents()
            .into_iter()
            .filter(|d| matches!(d.kind(), "Deployment" | "DaemonSet" | "StatefulSet"))
            .map(|d| (d.file.clone(), d.name().to_string(), d.value.clone()))
            .collect()
    }

    fn label(&self) -> String {
        format!("{} {}/{}", self.doc.file, self.doc.kind(), self.doc.name())
    }

    fn containers(&self) -> Vec<(&Value, bool)> {
        let mut all = Vec::new();
        for (key, init) in [("initContainers", true), ("containers", false)] {
            if let Some(list) = self.pod[key].as_sequence() {
                all.extend(list.iter().map(|c| (c, init)));
            }
        }
        all
    }

    fn siemrelay(&self) -> (&Value, bool) {
        let found: Vec<_> = self
            .containers()
            .into_iter()
            .filter(|(c, _)| c["name"] == "siemrelay")
            .collect();
        assert_eq!(found.len(), 1, "{}: one siemrelay container", self.label());
        found[0]
    }

    /// The ConfigMap mounted at /etc/siemrelay, and its pipeline.
    fn pipeline(&self, docs: &[Doc]) -> (String, Value) {
        let (container, _) = self.siemrelay();
        let mount = container["volumeMounts"]
            .as_sequence()
            .and_then(|m| m.iter().find(|m| m["mountPath"] == "/etc/siemrelay"))
            .unwrap_or_else(|| panic!("{}: no mount at /etc/siemrelay", self.label()));
        assert_eq!(
            mount["readOnly"],
            true,
            "{}: config read-only",
            self.label()
        );
        let volume = self.volume(mount["name"].as_str().unwrap_or_default());
        let map_name = volume["configMap"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: config volume is a ConfigMap", self.label()));
        let map = docs
            .iter()
            .find(|d| d.kind() == "ConfigMap" && d.name() == map_name)
            .unwrap_or_else(|| {
                panic!(
                    "{}: ConfigMap {map_name} not in deploy/kubernetes",
                    self.label()
                )
            });
        let text = map.value["data"]["siemrelay.yaml"]
            .as_str()
            .unwrap_or_else(|| panic!("ConfigMap {map_name} has no siemrelay.yaml"))
            .to_string();
        let parsed = serde_yaml::from_str(&text).expect("pipeline YAML");
        (text, parsed)
    }

    fn volume(&self, name: &str) -> Value {
        if let Some(volume) = self.pod["volumes"]
            .as_sequence()
            .and_then(|v| v.iter().find(|v| v["name"] == name))
        {
            return volume.clone();
        }
        // A StatefulSet's volumeClaimTemplates.
        if let Some(claim) = self.doc.value["spec"]["volumeClaimTemplates"]
            .as_sequence()
            .and_then(|v| v.iter().find(|v| v["metadata"]["name"] == name))
        {
            let mut volume = serde_yaml::Mapping::new();
            volume.insert("persistentVolumeClaimTemplate".into(), claim.clone());
            return Value::Mapping(volume);
        }
        panic!("{}: no volume {name}", self.label())
    }

    /// The environment the siemrelay container gets: Secret keys (envFrom and secretKeyRef)
    /// with their placeholder values, plain values, and a stand-in for field references.
    fn environment(&self, docs: &[Doc]) -> BTreeMap<String, String> {
        let (container, _) = self.siemrelay();
        let secret = |name: &str| -> &Value {
            &docs
                .iter()
                .find(|d| d.kind() == "Secret" && d.name() == name)
                .unwrap_or_else(|| {
                    panic!("{}: Secret {name} not in deploy/kubernetes", self.label())
                })
                .value
        };
        let mut env = BTreeMap::new();
        for source in container["envFrom"].as_sequence().into_iter().flatten() {
            let name = source["secretRef"]["name"].as_str().expect("secretRef");
            for (key, value) in secret(name)["stringData"].as_mapping().expect("stringData") {
                env.insert(
                    key.as_str().expect("key").to_string(),
                    value.as_str().expect("string value").to_string(),
                );
            }
        }
        for var in container["env"].as_sequence().into_iter().flatten() {
            let name = var["name"].as_str().expect("env name").to_string();
            let value = if let Some(value) = var["value"].as_str() {
                value.to_string()
            } else if let Some(key) = var["valueFrom"]["secretKeyRef"]["key"].as_str() {
                let from = var["valueFrom"]["secretKeyRef"]["name"]
                    .as_str()
                    .expect("name");
                secret(from)["stringData"][key]
                    .as_str()
                    .expect("secret key")
                    .to_string()
            } else {
                format!("from-{name}")
            };
            env.insert(name, value);
        }
        env
    }
}

fn with_workloads(mut check: impl FnMut(&Workload, &[Doc])) {
    let docs = documents();
    let mut seen = 0;
    for doc in docs
        .iter()
        .filter(|d| matches!(d.kind(), "Deployment" | "DaemonSet" | "StatefulSet"))
    {
        let workload = Workload {
            doc,
            pod: &doc.value["spec"]["template"]["spec"],
        };
        check(&workload, &docs);
        seen += 1;
    }
    assert!(
        seen >= 4,
        "sidecar, classic sidecar, DaemonSet, aggregator: {seen}"
    );
}

/// `20s`, `1m` → seconds.
fn seconds(duration: &str) -> u64 {
    let duration = duration.trim();
    let (number, unit) = duration.split_at(
        duration
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(duration.len()),
    );
    let n: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("duration {duration:?}"));
    match unit {
        "s" => n,
        "m" => n * 60,
        other => panic!("unit {other:?} in {duration:?}"),
    }
}

#[test]
fn every_pipeline_passes_siemrelay_validate_with_the_environment_its_pod_gives() {
    with_workloads(|workload, docs| {
        let (text, _) = workload.pipeline(docs);
        let env = workload.environment(docs);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("siemrelay.yaml");
        std::fs::write(&path, &text).expect("write pipeline");
        // Only what the pod provides: an ${env:NAME} the manifest forgot fails here.
        let output = Command::new(siemrelay_bin())
            .args(["validate", "--config"])
            .arg(&path)
            .env_clear()
            .envs(&env)
            .current_dir(dir.path())
            .output()
            .expect("siemrelay validate");
        assert!(
            output.status.success(),
            "{}: siemrelay validate with {:?}:\n{}{}",
            workload.label(),
            env.keys().collect::<Vec<_>>(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // Secrets come from the environment, never written into the ConfigMap.
        for value in env.values().filter(|v| v.len() >= 8) {
            assert!(
                !text.contains(value.as_str()),
                "{}: a secret value is in the ConfigMap",
                workload.label()
            );
        }
    });
}

#[test]
fn siemrelay_containers_are_hardened_probed_sized_and_drain_within_the_grace_period() {
    let version = env!("CARGO_PKG_VERSION");
    with_workloads(|workload, docs| {
        let label = workload.label();
        let (container, init) = workload.siemrelay();
        let (_, pipeline) = workload.pipeline(docs);
        let pod_security = &workload.pod["securityContext"];
        let security = &container["securityContext"];
        let either = |key: &str| -> &Value {
            if security[key].is_null() {
                &pod_security[key]
            } else {
                &security[key]
            }
        };
        assert_eq!(either("runAsNonRoot"), &Value::Bool(true), "{label}");
        assert_eq!(
            either("seccompProfile")["type"],
            "RuntimeDefault",
            "{label}"
        );
        assert_eq!(security["readOnlyRootFilesystem"], true, "{label}");
        assert_eq!(security["allowPrivilegeEscalation"], false, "{label}");
        assert_eq!(
            security["capabilities"]["drop"],
            serde_yaml::from_str::<Value>("[ALL]").expect("yaml"),
            "{label}"
        );
        assert!(
            security["capabilities"]["add"].is_null(),
            "{label}: no capability added"
        );

        // Every other container drops everything too; only the DaemonSet's state-owner runs
        // as root, with exactly CHOWN and FOWNER.
        for (other, _) in workload.containers() {
            let context = &other["securityContext"];
            assert_eq!(
                context["allowPrivilegeEscalation"],
                false,
                "{label}: {}",
                other["name"].as_str().unwrap_or_default()
            );
            assert_eq!(context["readOnlyRootFilesystem"], true, "{label}");
            assert_eq!(context["capabilities"]["drop"][0], "ALL", "{label}");
            if other["name"] == "state-owner" {
                assert_eq!(
                    context["capabilities"]["add"],
                    serde_yaml::from_str::<Value>("[CHOWN, FOWNER]").expect("yaml"),
                    "{label}"
                );
            } else {
                assert!(context["capabilities"]["add"].is_null(), "{label}");
                let non_root = if context["runAsNonRoot"].is_null() {
                    &pod_security["runAsNonRoot"]
                } else {
                    &context["runAsNonRoot"]
                };
                assert_eq!(non_root, &Value::Bool(true), "{label}");
            }
        }

        // The image of this version.
        let image = container["image"].as_str().expect("image");
        assert!(
            image.ends_with(&format!("/siemrelay:{version}")),
            "{label}: image {image} should be siemrelay:{version}"
        );
        assert_eq!(
            container["args"],
            serde_yaml::from_str::<Value>(
                r#"["run", "--config", "/etc/siemrelay/siemrelay.yaml"]"#
            )
            .expect("yaml"),
            "{label}"
        );

        // Probes on the admin listener, which listens on the pod IP with a token.
        let admin = pipeline["service"]["admin"]["endpoint"]
            .as_str()
            .unwrap_or_else(|| panic!("{label}: service.admin.endpoint"));
        assert!(admin.starts_with("0.0.0.0:"), "{label}: admin {admin}");
        let admin_port: u64 = admin
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        assert!(
            pipeline["service"]["admin"]["auth"]["bearer_token"]
                .as_str()
                .is_some_and(|t| t.starts_with("${env:")),
            "{label}: the admin token comes from a Secret"
        );
        let named_port = container["ports"]
            .as_sequence()
            .and_then(|p| {
                p.iter()
                    .find(|p| p["containerPort"].as_u64() == Some(admin_port))
            })
            .and_then(|p| p["name"].as_str())
            .unwrap_or_else(|| panic!("{label}: no containerPort {admin_port}"));
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            assert_eq!(
                container[probe]["httpGet"]["path"], path,
                "{label}: {probe}"
            );
            assert_eq!(
                container[probe]["httpGet"]["port"], named_port,
                "{label}: {probe}"
            );
        }
        if init {
            assert_eq!(
                container["restartPolicy"], "Always",
                "{label}: a native sidecar"
            );
            assert_eq!(
                container["startupProbe"]["httpGet"]["path"], "/readyz",
                "{label}"
            );
        }

        // Sized.
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    !container["resources"][kind][resource].is_null(),
                    "{label}: resources.{kind}.{resource}"
                );
            }
        }

        // State on a volume at the storage directory.
        assert_eq!(
            pipeline["service"]["storage"]["directory"], "/var/lib/siemrelay",
            "{label}"
        );
        let mount = container["volumeMounts"]
            .as_sequence()
            .and_then(|m| m.iter().find(|m| m["mountPath"] == "/var/lib/siemrelay"))
            .unwrap_or_else(|| panic!("{label}: nothing mounted at /var/lib/siemrelay"));
        let volume = workload.volume(mount["name"].as_str().unwrap_or_default());
        assert!(
            !volume["emptyDir"].is_null()
                || !volume["persistentVolumeClaimTemplate"].is_null()
                || !volume["persistentVolumeClaim"].is_null()
                || !volume["hostPath"].is_null(),
            "{label}: the storage volume {volume:?}"
        );

        // The drain fits in the grace period.
        let grace = workload.pod["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("{label}: terminationGracePeriodSeconds"));
        let shutdown = seconds(
            pipeline["service"]["shutdown_timeout"]
                .as_str()
                .unwrap_or_else(|| panic!("{label}: service.shutdown_timeout")),
        );
        assert!(
            grace > shutdown,
            "{label}: terminationGracePeriodSeconds {grace} must be above shutdown_timeout {shutdown}s"
        );
    });
}

/// The port numbers of a pipeline's network receivers.
fn receiver_ports(pipeline: &Value) -> Vec<(String, u64)> {
    let mut endpoints = Vec::new();
    for (id, receiver) in pipeline["receivers"].as_mapping().into_iter().flatten() {
        let id = id.as_str().unwrap_or_default().to_string();
        if let Some(endpoint) = receiver["endpoint"].as_str() {
            endpoints.push((id.clone(), endpoint.to_string()));
        }
        for (_, protocol) in receiver["protocols"].as_mapping().into_iter().flatten() {
            if let Some(endpoint) = protocol["endpoint"].as_str() {
                endpoints.push((id.clone(), endpoint.to_string()));
            }
        }
    }
    endpoints
        .into_iter()
        .map(|(id, endpoint)| {
            let port = endpoint
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port");
            (format!("{id} on {endpoint}"), port)
        })
        .collect()
}

#[test]
fn network_policies_let_no_one_but_the_gateway_reach_a_receiver() {
    with_workloads(|workload, docs| {
        let label = workload.label();
        let (_, pipeline) = workload.pipeline(docs);
        let labels = workload.doc.value["spec"]["template"]["metadata"]["labels"]
            .as_mapping()
            .expect("pod labels");
        let policy = docs
            .iter()
            .find(|d| {
                d.kind() == "NetworkPolicy"
                    && d.value["spec"]["podSelector"]["matchLabels"]
                        .as_mapping()
                        .is_some_and(|selector| {
                            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                        })
            })
            .unwrap_or_else(|| panic!("{label}: no NetworkPolicy selects its pods"));
        let spec = &policy.value["spec"];
        assert!(
            spec["policyTypes"]
                .as_sequence()
                .is_some_and(|t| t.iter().any(|t| t == "Ingress")),
            "{label}: the policy restricts ingress"
        );
        // Named ports of the pod's containers, to resolve the policy's ports.
        let mut names = BTreeMap::new();
        for (container, _) in workload.containers() {
            for port in container["ports"].as_sequence().into_iter().flatten() {
                if let (Some(name), Some(number)) =
                    (port["name"].as_str(), port["containerPort"].as_u64())
                {
                    names.insert(name.to_string(), number);
                }
            }
        }
        let mut admitted = BTreeSet::new();
        for rule in spec["ingress"].as_sequence().into_iter().flatten() {
            let ports = rule["ports"].as_sequence().unwrap_or_else(|| {
                panic!("{label}: an ingress rule without ports admits every port")
            });
            for port in ports {
                let number = port["port"]
                    .as_u64()
                    .or_else(|| port["port"].as_str().and_then(|n| names.get(n).copied()))
                    .unwrap_or_else(|| panic!("{label}: policy port {:?}", port["port"]));
                admitted.insert(number);
            }
        }
        for (receiver, port) in receiver_ports(&pipeline) {
            assert!(
                !admitted.contains(&port),
                "{label}: the NetworkPolicy admits traffic to receiver {receiver}"
            );
            assert!(
                receiver.contains("127.0.0.1:"),
                "{label}: receiver {receiver} should listen on the pod's loopback (the gateway is in the pod)"
            );
        }
    });
}

#[test]
fn the_native_and_classic_sidecar_forms_are_both_there() {
    let workloads = Workload::all();
    let files: BTreeSet<&str> = workloads.iter().map(|(f, _, _)| f.as_str()).collect();
    for file in [
        "gateway-sidecar.yaml",
        "gateway-sidecar-classic.yaml",
        "node-agent-daemonset.yaml",
        "aggregator.yaml",
    ] {
        assert!(files.contains(file), "deploy/kubernetes/{file}: {files:?}");
    }
    let kinds: BTreeSet<String> = workloads
        .iter()
        .map(|(_, _, v)| v["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        kinds.contains("DaemonSet") && kinds.contains("StatefulSet"),
        "{kinds:?}"
    );
    let daemonset = workloads
        .iter()
        .find(|(_, _, v)| v["kind"] == "DaemonSet")
        .expect("DaemonSet");
    let config = documents()
        .into_iter()
        .find(|d| d.file == daemonset.0 && d.kind() == "ConfigMap")
        .expect("DaemonSet ConfigMap");
    let pipeline: Value = serde_yaml::from_str(
        config.value["data"]["siemrelay.yaml"]
            .as_str()
            .expect("pipeline"),
    )
    .expect("yaml");
    assert!(
        pipeline["receivers"].as_mapping().is_some_and(|r| r
            .keys()
            .any(|k| k.as_str().is_some_and(|k| k.starts_with("file")))),
        "the DaemonSet tails files with the file receiver"
    );
}
