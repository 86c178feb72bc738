//! Issue 26: the container image. `scripts/build-image.sh` builds it from the debug binary this
//! test suite already has (the release image is the same script without `--binary`), then the
//! image is run the way a container runtime would run it and checked end to end.
//!
//! `podman run` is refused on this project's machines (crun: "cgroups in hybrid mode not
//! supported"), so the image's content is run by hand: `buildah from` + `buildah mount`, the
//! root filesystem made read-only, `/proc`, `/dev`, a storage volume and a read-only config bind-
//! mounted where a runtime would put them, and the image's entrypoint + cmd executed inside a
//! `chroot` as the image's user, with the image's environment and working directory. The test
//! prints each step; where `podman run` works it also runs the image through podman.
//!
//! Needs root (mounts, chroot) and buildah (tests/apt-packages.txt; `scripts/setup-test-env.sh`
//! installs it when run as root). Without root the test prints why it did not run; as root
//! without buildah it fails and says how to install it.

mod plugin_support;

use serde_json::Value;
use siemrelay_e2e::fake::http_sink::{FakeHttpSink, HttpSinkOptions, ScriptedReply};
use siemrelay_e2e::{free_port, read_ndjson_files, siemrelay_bin, wait_for_port};
use std::ffi::CString;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long the pipeline may take to drain after SIGTERM (its `service.shutdown_timeout`).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

fn step(text: &str) {
    println!("[image test] {text}");
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn tool_exists(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Returns why the test cannot run here, or `None` when it can. Only a missing root is a
/// reason to skip: buildah installs wherever root can run apt-get.
fn cannot_run_here() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let buildah = tool_exists("buildah");
    if !root {
        return Some(format!(
            "SKIPPED: the image test mounts file systems and chroots, which needs root (buildah {}installed)",
            if buildah { "" } else { "not " }
        ));
    }
    assert!(
        buildah,
        "buildah is not installed: run `bash scripts/setup-test-env.sh` (installs podman and buildah from tests/apt-packages.txt)"
    );
    None
}

/// The image's configuration, as `buildah inspect` reports it.
struct ImageConfig {
    user: String,
    env: Vec<(String, String)>,
    working_dir: String,
    command: Vec<String>,
    labels: Value,
    config: Value,
}

impl ImageConfig {
    fn read(tag: &str) -> ImageConfig {
        let output = run(Command::new("buildah").args(["inspect", "--type", "image", tag]));
        let inspect: Value = serde_json::from_slice(&output.stdout).expect("buildah inspect JSON");
        let config = inspect["OCIv1"]["config"].clone();
        let strings = |value: &Value| -> Vec<String> {
            value
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let env = strings(&config["Env"])
            .into_iter()
            .filter_map(|pair| {
                pair.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let mut command = strings(&config["Entrypoint"]);
        command.extend(strings(&config["Cmd"]));
        ImageConfig {
            user: config["User"].as_str().unwrap_or_default().to_string(),
            env,
            working_dir: config["WorkingDir"].as_str().unwrap_or("/").to_string(),
            command,
            labels: config["Labels"].clone(),
            config,
        }
    }

    fn uid_gid(&self) -> (u32, u32) {
        let (uid, gid) = self
            .user
            .split_once(':')
            .unwrap_or((&self.user, &self.user));
        (
            uid.parse().expect("numeric image user"),
            gid.parse().expect("numeric image group"),
        )
    }
}

/// A built image with a working container mounted; everything is undone on drop (also when
/// the test fails): processes killed, bind mounts removed, container and image deleted.
struct MountedImage {
    tag: String,
    container: String,
    rootfs: PathBuf,
    mounts: Vec<PathBuf>,
    processes: Vec<Child>,
}

impl MountedImage {
    fn mount(tag: &str) -> MountedImage {
        let container = stdout_text(&run(Command::new("buildah").args(["from", tag])));
        let mut image = MountedImage {
            tag: tag.to_string(),
            container,
            rootfs: PathBuf::new(),
            mounts: Vec::new(),
            processes: Vec::new(),
        };
        image.rootfs = PathBuf::from(stdout_text(&run(
            Command::new("buildah").args(["mount", &image.container])
        )));
        image
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.rootfs.join(inside.trim_start_matches('/'))
    }

    fn bind(&mut self, source: &Path, inside: &str, read_only: bool) {
        let target = self.path(inside);
        run(Command::new("mount").arg("--bind").arg(source).arg(&target));
        self.mounts.push(target.clone());
        if read_only {
            run(Command::new("mount")
                .args(["-o", "remount,bind,ro"])
                .arg(&target));
        }
    }

    /// What a runtime sets up: the image's root read-only (as `readOnlyRootFilesystem`),
    /// `/proc`, `/dev`, the storage volume and the config file (read-only).
    fn prepare_like_a_runtime(&mut self, volume: &Path, config: &Path) {
        for dir in ["proc", "dev"] {
            std::fs::create_dir_all(self.path(dir)).expect("mount point");
        }
        let root = self.rootfs.clone();
        self.bind(&root, "/", true);
        let proc_target = self.path("proc");
        run(Command::new("mount")
            .args(["-t", "proc", "proc"])
            .arg(&proc_target));
        self.mounts.push(proc_target);
        self.bind(Path::new("/dev"), "/dev", true);
        self.bind(volume, "/var/lib/siemrelay", false);
        self.bind(config, "/etc/siemrelay/siemrelay.yaml", true);
    }

    /// A command that runs `program` inside the image: chroot to its root, its working
    /// directory, its user (no supplementary groups), and only its environment.
    fn command(&self, image: &ImageConfig, program: &str) -> Command {
        let (uid, gid) = image.uid_gid();
        let root = CString::new(self.rootfs.as_os_str().as_encoded_bytes()).expect("root path");
        let dir = CString::new(image.working_dir.as_bytes()).expect("working dir");
        let mut command = Command::new(program);
        command.env_clear().envs(image.env.iter().cloned());
        // SAFETY: only async-signal-safe system calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let check = |result: libc::c_int| {
                    if result == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                check(libc::chroot(root.as_ptr()))?;
                check(libc::chdir(dir.as_ptr()))?;
                check(libc::setgroups(0, std::ptr::null()))?;
                check(libc::setgid(gid))?;
                check(libc::setuid(uid))?;
                Ok(())
            });
        }
        command
    }
}

impl Drop for MountedImage {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
        for target in self.mounts.iter().rev() {
            let status = Command::new("umount").arg(target).status();
            if !status.is_ok_and(|s| s.success()) {
                let _ = Command::new("umount").arg("-l").arg(target).status();
            }
        }
        let _ = Command::new("buildah")
            .args(["umount", &self.container])
            .output();
        let _ = Command::new("buildah")
            .args(["rm", &self.container])
            .output();
        let _ = Command::new("buildah").args(["rmi", &self.tag]).output();
    }
}

fn repo() -> &'static Path {
    plugin_support::repo()
}

fn pipeline(webhook_port: u16, admin_port: u16, hook_url: &str) -> String {
    format!(
        r#"# Mounted read-only at /etc/siemrelay/siemrelay.yaml, as `-v pipeline.yaml:/etc/siemrelay/siemrelay.yaml:ro`.
receivers:
  webhook: {{ endpoint: "127.0.0.1:{webhook_port}" }}
exporters:
  file:
    path: /var/lib/siemrelay/events-%Y-%m-%d.ndjson
  webhook/soar:
    endpoint: "{hook_url}/hook"
    retry: {{ initial_interval: 100ms, max_interval: 200ms, max_elapsed_time: 1m }}
service:
  shutdown_timeout: {}s
  storage: {{ directory: /var/lib/siemrelay }}
  admin: {{ endpoint: "127.0.0.1:{admin_port}" }}
  pipelines:
    security: {{ receivers: [webhook], processors: [], exporters: [file, webhook/soar] }}
"#,
        SHUTDOWN_TIMEOUT.as_secs()
    )
}

fn events_body(count: usize) -> (String, Vec<String>) {
    let mut body = String::new();
    let mut ids = Vec::new();
    for i in 0..count {
        let id = uuid::Uuid::new_v4().to_string();
        body.push_str(&format!(
            "{{\"event_id\":\"{id}\",\"event_type\":\"lockout\",\"severity\":\"high\",\"summary\":\"image test {i}\"}}\n"
        ));
        ids.push(id);
    }
    (body, ids)
}

fn uid_of_process(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_webhook_to_file_on_its_volume_with_a_read_only_config_and_drains_on_sigterm()
 {
    if let Some(reason) = cannot_run_here() {
        println!("{reason}");
        eprintln!("{reason}");
        return;
    }
    let binary = siemrelay_bin();
    let plugin = plugin_support::gelf_plugin();
    let work = tempfile::tempdir().expect("tempdir");
    let tag = format!(
        "localhost/siemrelay-e2e:{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );

    step(&format!(
        "building {tag} with scripts/build-image.sh from {}",
        binary.display()
    ));
    let built = run(Command::new("bash")
        .arg(repo().join("scripts/build-image.sh"))
        .arg("--binary")
        .arg(&binary)
        .arg("--plugin")
        .arg(&plugin)
        .arg("--tag")
        .arg(&tag)
        .arg("--builder")
        .arg("buildah")
        .arg("--context")
        .arg(work.path().join("context"))
        .current_dir(repo()));
    step(stdout_text(&built).lines().last().unwrap_or_default());

    // The image's metadata: user, volume, ports, labels.
    let image = ImageConfig::read(&tag);
    let version_line = stdout_text(&run(Command::new(&binary).arg("-V")));
    let (_, rest) = version_line
        .split_once(' ')
        .expect("siemrelay VERSION (commit C)");
    let (version, commit) = rest.split_once(" (commit ").expect("version and commit");
    let commit = commit.trim_end_matches(')');
    assert_eq!(image.user, "10001:10001", "{}", image.config);
    assert!(
        image.config["Volumes"].get("/var/lib/siemrelay").is_some(),
        "{}",
        image.config
    );
    for port in ["8088/tcp", "4317/tcp", "4318/tcp", "8686/tcp"] {
        assert!(
            image.config["ExposedPorts"].get(port).is_some(),
            "{port}: {}",
            image.config
        );
    }
    assert_eq!(image.labels["org.opencontainers.image.version"], version);
    assert_eq!(image.labels["org.opencontainers.image.revision"], commit);
    assert_eq!(
        image.labels["org.opencontainers.image.licenses"],
        "Apache-2.0"
    );
    assert!(
        image.labels["org.opencontainers.image.source"].is_string(),
        "{}",
        image.labels
    );
    assert_eq!(
        image.command,
        [
            "/usr/bin/siemrelay",
            "run",
            "--config",
            "/etc/siemrelay/siemrelay.yaml"
        ]
    );
    step(&format!(
        "image config: user {}, volume /var/lib/siemrelay, ports 8088 4317 4318 8686, version {version}, revision {commit}",
        image.user
    ));

    // Where containers can run, run it for real too.
    match Command::new("podman")
        .args(["run", "--rm", "--network=none", &tag, "-V"])
        .output()
    {
        Ok(output) if output.status.success() => {
            assert_eq!(stdout_text(&output), version_line);
            step("podman run works here: the image printed its version");
        }
        Ok(output) => step(&format!(
            "podman run is refused here ({}); running the image's content with buildah mount + chroot instead",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        )),
        Err(e) => step(&format!(
            "podman is not installed ({e}); running the image's content with buildah mount + chroot"
        )),
    }

    let mut mounted = MountedImage::mount(&tag);
    step(&format!(
        "buildah from + mount: container {} at {}",
        mounted.container,
        mounted.rootfs.display()
    ));
    for file in [
        "/usr/bin/siemrelay",
        "/etc/ssl/certs/ca-certificates.crt",
        "/usr/share/man/man1/siemrelay.1.gz",
        "/usr/lib/siemrelay/plugins/libsiemrelay_gelf.so",
    ] {
        let meta = std::fs::metadata(mounted.path(file))
            .unwrap_or_else(|e| panic!("{file} is not in the image: {e}"));
        assert!(meta.len() > 0, "{file} is empty");
    }
    assert!(
        !mounted.path("/bin/sh").exists(),
        "the image is minimal: no shell"
    );

    // The image's own default config is valid, and a plugin loads in the image (dlopen against
    // the image's glibc): a plugin config error comes from the plugin's own validation.
    let default_valid = mounted
        .command(&image, "/usr/bin/siemrelay")
        .args(["validate", "--config", "/etc/siemrelay/siemrelay.yaml"])
        .output()
        .expect("run validate in the image");
    assert!(
        default_valid.status.success(),
        "the image's default config: {}{}",
        String::from_utf8_lossy(&default_valid.stdout),
        String::from_utf8_lossy(&default_valid.stderr)
    );
    step("siemrelay validate on the image's /etc/siemrelay/siemrelay.yaml: valid");

    let volume = work.path().join("volume");
    std::fs::create_dir(&volume).expect("volume");
    let (uid, gid) = image.uid_gid();
    std::os::unix::fs::chown(&volume, Some(uid), Some(gid)).expect("chown the volume");
    std::fs::write(
        volume.join("plugin.yaml"),
        "receivers: { webhook: { endpoint: \"127.0.0.1:9\" } }\n\
         exporters:\n  plugin/graylog:\n    library: /usr/lib/siemrelay/plugins/libsiemrelay_gelf.so\n    config: { endpoint: \"graylog:12201\" }\n\
         service:\n  plugins: { directory: /usr/lib/siemrelay/plugins }\n  pipelines: { security: { receivers: [webhook], exporters: [plugin/graylog] } }\n",
    )
    .expect("plugin config");
    // The webhook exporter's fake SIEM answers 503 twice first: the drain has to retry.
    let hook = FakeHttpSink::start(HttpSinkOptions {
        path: Some("/hook".into()),
        ..Default::default()
    });
    hook.script([ScriptedReply::status(503), ScriptedReply::status(503)]);
    let webhook_port = free_port();
    let admin_port = free_port();
    let config = work.path().join("pipeline.yaml");
    std::fs::write(&config, pipeline(webhook_port, admin_port, &hook.url())).expect("config");
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("config mode");
    mounted.prepare_like_a_runtime(&volume, &config);
    step(
        "mounted: image root read-only, /proc, /dev, volume → /var/lib/siemrelay, config → /etc/siemrelay/siemrelay.yaml (ro)",
    );

    let plugin_check = mounted
        .command(&image, "/usr/bin/siemrelay")
        .args(["validate", "--config", "/var/lib/siemrelay/plugin.yaml"])
        .output()
        .expect("run validate in the image");
    let plugin_text = String::from_utf8_lossy(&plugin_check.stderr).to_string()
        + &String::from_utf8_lossy(&plugin_check.stdout);
    assert!(
        !plugin_check.status.success()
            && plugin_text.contains("must be an http:// or https:// URL")
            && plugin_text.contains("plugin siemrelay-gelf"),
        "the GELF plugin's own validation should reject the endpoint: {plugin_text}"
    );
    step("the GELF plugin loads in the image (dlopen) and validates its config");

    let write_denied = std::fs::OpenOptions::new()
        .append(true)
        .open(mounted.path("/etc/siemrelay/siemrelay.yaml"));
    assert!(write_denied.is_err(), "the config mount is read-only");

    // Run the image: its entrypoint + cmd, as its user, in its working directory.
    let log_path = work.path().join("siemrelay.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let (program, args) = image.command.split_first().expect("entrypoint");
    let child = mounted
        .command(&image, program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("run the image's entrypoint");
    let pid = child.id();
    mounted.processes.push(child);
    let logs = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let webhook_addr = SocketAddr::from(([127, 0, 0, 1], webhook_port));
    assert!(
        wait_for_port(webhook_addr, Duration::from_secs(60)),
        "the image did not listen on {webhook_addr}; logs:\n{}",
        logs()
    );
    assert_eq!(uid_of_process(pid), Some(uid), "runs as the image's user");
    step(&format!(
        "{} {} running as uid {uid}, pid {pid}",
        program,
        args.join(" ")
    ));

    let client = reqwest::Client::new();
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let reply = client
            .get(format!("http://127.0.0.1:{admin_port}{path}"))
            .send()
            .await
            .expect("probe");
        assert_eq!(reply.status(), 200, "{path}");
        let body: Value = reply.json().await.expect("probe JSON");
        assert_eq!(body["status"], status, "{path}");
    }
    step("/healthz and /readyz answer 200");

    let sent = siemrelay_e2e::post_ndjson_requests(webhook_port, 4, |_| events_body(25)).await;
    step(&format!("posted {} events to the webhook", sent.len()));

    // SIGTERM at once: what was accepted must still reach both exporters.
    let stop_started = Instant::now();
    // SAFETY: kill(2) on the child we started.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let status = loop {
        let child = mounted.processes.last_mut().expect("child");
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            stop_started.elapsed() < SHUTDOWN_TIMEOUT,
            "no exit within shutdown_timeout ({SHUTDOWN_TIMEOUT:?}); logs:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let drained_in = stop_started.elapsed();
    assert!(status.success(), "exit {status}; logs:\n{}", logs());
    assert!(
        logs().contains("shutdown complete: every accepted event was handled"),
        "{}",
        logs()
    );
    step(&format!(
        "SIGTERM: drained and exited 0 in {drained_in:?} (shutdown_timeout {SHUTDOWN_TIMEOUT:?})"
    ));

    let written: Vec<String> = read_ndjson_files(&volume, "events-")
        .iter()
        .filter_map(|e| e["event_id"].as_str().map(str::to_string))
        .collect();
    let mut missing_in_file: Vec<&String> =
        sent.iter().filter(|id| !written.contains(id)).collect();
    missing_in_file.truncate(5);
    assert!(
        missing_in_file.is_empty() && written.len() == sent.len(),
        "file on the volume: {} of {} events, missing e.g. {missing_in_file:?}",
        written.len(),
        sent.len()
    );
    let delivered = hook.read(|state| state.events.counts.clone());
    assert!(
        sent.iter().all(|id| delivered.contains_key(id)),
        "the webhook SIEM got {} of {} events; logs:\n{}",
        delivered.len(),
        sent.len(),
        logs()
    );
    let file = std::fs::read_dir(&volume)
        .expect("volume")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("events-"))
        .expect("events file");
    assert_eq!(
        file.metadata().expect("metadata").uid(),
        uid,
        "written by the image's user"
    );
    step(&format!(
        "{} events in {} on the volume (owner uid {uid}) and at the webhook SIEM",
        written.len(),
        file.file_name().to_string_lossy()
    ));
}
