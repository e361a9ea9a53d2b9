//! Runs an admitted pod like the kubelet: init containers one after the other (a failure
//! stops the pod before any app container starts), then the app containers (sequentially
//! here; each is a short-lived task). Every container runs in a bubblewrap sandbox:
//!
//! - **native sidecars** (init containers with `restartPolicy: Always`) start in the
//!   background in order, as PID 1 of their namespace; their exec `startupProbe` (run with
//!   the container's mounts, env and user, at its period and failure threshold) gates the
//!   next container. Once the app containers are done they get SIGTERM, last first, and
//!   [`SIDECAR_GRACE`] to exit (the run fails otherwise); their exit codes do not count
//!   towards [`PodRun::succeeded`], as for the kubelet. While sidecars run, `secret` volumes
//!   are re-read every half second and a changed Secret is published as the kubelet does
//!   ([`kubelet_update`]: a new `..<stamp>` set, one rename of `..data`);
//! - **image**: the agent image is an empty root holding only the static agent at `/agent`
//!   and a CA bundle (what `FROM scratch` gives); any other image is the host's root,
//!   read-only (where Python and flytekit are installed);
//! - **command/args/env** exactly as in the spec (`command` replaces the image entrypoint,
//!   `args` follow it), plus the kubelet's `KUBERNETES_SERVICE_HOST/PORT`; `secretKeyRef`
//!   env vars are resolved from the API (optional ones may be absent); `$(VAR)` references
//!   are expanded as the kubelet does ([`expand`]): in an env `value` against the env vars
//!   defined before it and the service env, in `command` and `args` against the container's
//!   whole env;
//! - **the pod object**: created in the API before the first container starts (so it has a
//!   uid, and tokens can be bound to it) and deleted after the last one ends;
//! - **volumes**: `emptyDir` with `medium: Memory` is a fresh tmpfs (mode 0777, group
//!   `fsGroup` with setgid when set); `secret` volumes hold the Secret's keys (`items` only
//!   when given, each at its `path`, mode `mode`/`defaultMode`; a missing Secret or key is an
//!   empty volume / absent file when `optional`, else the pod does not start), read with the
//!   kubelet's own rights (node authorization, not the pod's), laid out by the kubelet's atomic
//!   writer (`..data` symlink to a timestamped directory); `projected` volumes hold
//!   `serviceAccountToken` sources as real TokenRequest tokens bound to the pod (audience and
//!   expiry as given, the API's audience by default), `kube-root-ca.crt` and the downward
//!   API's namespace/name/uid; `hostPath` is bound; each mount is read-only when the spec says
//!   so;
//! - **user**: `runAsUser`/`runAsGroup` (container over pod), with `fsGroup` and
//!   `supplementalGroups`, through `setpriv` and a user namespace;
//! - **termination message**: a file bound at `terminationMessagePath`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flyte_secret_testkit::kubelet::{VolumeFile, atomic_write};
use serde_json::Value;

/// The image name that means "the agent image" (an empty root with the static agent).
pub const AGENT_IMAGE: &str = "ghcr.io/flyte-secret-agent/agent:e2e";

/// How the runner reaches the cluster: the API for `secretKeyRef` and tokens.
pub trait Cluster {
    /// A service-account token for `namespace/service_account` (API audience).
    fn service_account_token(&self, namespace: &str, service_account: &str) -> String;
    /// The API server's CA (PEM).
    fn ca_pem(&self) -> String;
    /// `KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`.
    fn service_host_port(&self) -> (String, String);
    /// The bytes of a Secret's key, or `None` when the Secret or key is missing.
    fn secret_key(&self, namespace: &str, name: &str, key: &str) -> Option<Vec<u8>>;
    /// Every key of a Secret, or `None` when it is missing (the kubelet's read of a `secret`
    /// volume, under node authorization).
    fn secret_data(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>>;
    /// Creates the pod object; returns its uid.
    fn create_pod(&self, pod: &Value) -> anyhow::Result<String>;
    /// Deletes the pod object (best effort).
    fn delete_pod(&self, namespace: &str, name: &str);
    /// A TokenRequest for `namespace/service_account` bound to the pod, with `audience`
    /// (the API's when `None`) and lifetime, as the kubelet requests for projected tokens.
    fn pod_token(
        &self,
        namespace: &str,
        service_account: &str,
        audience: Option<&str>,
        expiration_seconds: i64,
        pod: (&str, &str),
    ) -> anyhow::Result<String>;
}

/// One container's run.
#[derive(Debug)]
pub struct ContainerRun {
    /// Container name.
    pub name: String,
    /// Whether it was an init container.
    pub init: bool,
    /// Whether it was a native sidecar (an init container with `restartPolicy: Always`).
    pub sidecar: bool,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// What it wrote to its termination message file.
    pub termination_message: String,
    /// A sidecar: how long it took to exit after SIGTERM (`None`: it had to be killed, or it
    /// is no sidecar).
    pub stopped_after: Option<Duration>,
}

/// A pod's run.
#[derive(Debug)]
pub struct PodRun {
    /// Containers that ran, in order.
    pub containers: Vec<ContainerRun>,
    /// Host directories backing the pod's emptyDir volumes, by volume name (kept until drop).
    pub volumes: BTreeMap<String, PathBuf>,
    dir: PathBuf,
    tmpfs: Vec<PathBuf>,
}

impl PodRun {
    /// Whether every container exited 0 (`Succeeded`). Sidecars' exit codes do not count,
    /// as for the kubelet (they are terminated once the app containers are done).
    pub fn succeeded(&self) -> bool {
        let mut counted = self.containers.iter().filter(|c| !c.sidecar).peekable();
        counted.peek().is_some() && counted.all(|c| c.code == Some(0))
    }

    /// A container's run by name.
    pub fn container(&self, name: &str) -> Option<&ContainerRun> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// Everything every container printed (for canary scans).
    pub fn all_output(&self) -> String {
        self.containers
            .iter()
            .map(|c| format!("{}\n{}\n{}\n", c.stdout, c.stderr, c.termination_message))
            .collect()
    }
}

impl Drop for PodRun {
    fn drop(&mut self) {
        for t in &self.tmpfs {
            let _ = Command::new("umount").arg(t).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn int_of(v: &Value, key: &str) -> Option<u32> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

/// Runs `pod` (already admitted) and returns what every container did.
pub fn run_pod(pod: &Value, cluster: &dyn Cluster) -> anyhow::Result<PodRun> {
    let namespace = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let service_account = str_of(&pod["spec"], "serviceAccountName")
        .unwrap_or("default")
        .to_string();
    let dir = std::env::temp_dir().join(format!(
        "fsa-pod-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    let mut run = PodRun {
        containers: Vec::new(),
        volumes: BTreeMap::new(),
        dir: dir.clone(),
        tmpfs: Vec::new(),
    };
    // Tests run the same fixture pod in parallel: each run is a pod of its own, with a
    // unique name (as `generateName` gives), so tokens bind to exactly one run.
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let mut pod = pod.clone();
    let pod_name = format!(
        "{}-{}-{}",
        pod["metadata"]["name"].as_str().unwrap_or("pod"),
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    pod["metadata"]["name"] = Value::String(pod_name.clone());
    pod["metadata"]["namespace"] = Value::String(namespace.clone());
    let pod_uid = cluster
        .create_pod(&pod)
        .with_context(|| format!("creating pod {namespace}/{pod_name}"))?;
    let result = run_containers(
        &pod,
        cluster,
        &mut run,
        (&namespace, &service_account),
        (&pod_name, &pod_uid),
    );
    cluster.delete_pod(&namespace, &pod_name);
    result.map(|()| run)
}

fn run_containers(
    pod: &Value,
    cluster: &dyn Cluster,
    run: &mut PodRun,
    (namespace, service_account): (&str, &str),
    (pod_name, pod_uid): (&str, &str),
) -> anyhow::Result<()> {
    let spec = &pod["spec"];
    let dir = run.dir.clone();
    let pod_sc = spec.get("securityContext").cloned().unwrap_or(Value::Null);
    let fs_group = int_of(&pod_sc, "fsGroup");

    // Volumes: name → host path.
    let mut volumes: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut secret_volumes: Vec<SecretVolume> = Vec::new();
    for v in spec["volumes"].as_array().into_iter().flatten() {
        let name = str_of(v, "name")
            .context("volume without a name")?
            .to_string();
        let host = dir.join(format!("vol-{name}"));
        std::fs::create_dir_all(&host)?;
        if let Some(empty) = v.get("emptyDir") {
            if str_of(empty, "medium") == Some("Memory") {
                let size = str_of(empty, "sizeLimit")
                    .map(k8s_bytes)
                    .unwrap_or(64 << 20);
                let status = Command::new("mount")
                    .args([
                        "-t",
                        "tmpfs",
                        "-o",
                        &format!("size={size},mode=0777"),
                        "tmpfs",
                    ])
                    .arg(&host)
                    .status()?;
                if !status.success() {
                    bail!("mounting a tmpfs for emptyDir {name} failed (the runner needs root)");
                }
                run.tmpfs.push(host.clone());
            }
            std::fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
            if let Some(g) = fs_group {
                std::os::unix::fs::chown(&host, None, Some(g))?;
                std::fs::set_permissions(
                    &host,
                    std::os::unix::fs::PermissionsExt::from_mode(0o2777),
                )?;
            }
            run.volumes.insert(name.clone(), host.clone());
        } else if let Some(projected) = v.get("projected") {
            let mode = int_of(projected, "defaultMode").unwrap_or(0o644);
            let mut files = Vec::new();
            for source in projected["sources"].as_array().into_iter().flatten() {
                files.extend(projected_source(
                    source,
                    cluster,
                    (namespace, service_account),
                    (pod_name, pod_uid),
                )?);
            }
            atomic_write(&host, &files, mode)?;
        } else if let Some(secret) = v.get("secret") {
            let files = secret_files(secret, cluster, namespace)
                .with_context(|| format!("volume {name}"))?;
            let mode = int_of(secret, "defaultMode").unwrap_or(0o644);
            atomic_write(&host, &files, mode)?;
            secret_volumes.push(SecretVolume {
                host: host.clone(),
                secret: secret.clone(),
                mode,
                files,
            });
        } else if let Some(path) = v.get("hostPath").and_then(|h| str_of(h, "path")) {
            std::fs::remove_dir(&host)?;
            std::os::unix::fs::symlink(path, &host)?;
        } else {
            bail!(
                "volume {name}: only emptyDir, secret, projected and hostPath are supported by this runner"
            );
        }
        volumes.insert(name, host);
    }

    let (host, port) = cluster.service_host_port();
    let containers = spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (c, true))
        .chain(
            spec["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| (c, false)),
        );
    let mut sidecars: Vec<Sidecar> = Vec::new();
    let mut outcome = Ok(());
    for (container, init) in containers {
        let name = str_of(container, "name").unwrap_or("?").to_string();
        let termination = dir.join(format!("termination-{name}"));
        std::fs::write(&termination, "")?;
        std::fs::set_permissions(
            &termination,
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )?;
        let sandboxed = |c: &Value, termination: &Path| {
            sandbox(
                c,
                &pod_sc,
                &volumes,
                termination,
                cluster,
                namespace,
                (&host, &port),
            )
        };
        let cmd = sandboxed(container, &termination)?;
        let out = Captured::new(&dir, &name)?;
        if init && str_of(container, "restartPolicy") == Some("Always") {
            // A native sidecar: started, and the next container waits for its startupProbe.
            let child = out
                .spawn(cmd)
                .with_context(|| format!("starting sidecar {name}"))?;
            let mut sidecar = Sidecar {
                name: name.clone(),
                child,
                out,
                termination,
            };
            // Probes write no termination message, but the sandbox binds one.
            let probe_termination = dir.join(format!("termination-probe-{name}"));
            std::fs::write(&probe_termination, "")?;
            if let Err(why) = await_startup(container, &mut sidecar, &|probe| {
                sandboxed(probe, &probe_termination)
            }) {
                // The kubelet would restart it forever: the pod never starts.
                let mut result = sidecar.kill();
                result.stderr.push_str(&format!("\n[runner] {why}\n"));
                run.containers.push(result);
                break;
            }
            sidecars.push(sidecar);
            continue;
        }
        let mut child = out
            .spawn(cmd)
            .with_context(|| format!("running container {name}"))?;
        // While sidecars run, the kubelet keeps `secret` volumes current.
        let status = wait_polling(&mut child, || {
            if !sidecars.is_empty() {
                sync_secret_volumes(&mut secret_volumes, cluster, namespace);
            }
        })
        .with_context(|| format!("running container {name}"))?;
        let (stdout, stderr) = out.read();
        let result = ContainerRun {
            name,
            init,
            sidecar: false,
            code: status.code(),
            stdout,
            stderr,
            termination_message: std::fs::read_to_string(&termination).unwrap_or_default(),
            stopped_after: None,
        };
        let failed = result.code != Some(0);
        run.containers.push(result);
        if failed && init {
            // restartPolicy Never: the pod fails; app containers never start.
            break;
        }
    }
    // The app containers are done (or the pod failed): sidecars get SIGTERM, last first.
    while let Some(sidecar) = sidecars.pop() {
        let name = sidecar.name.clone();
        let result = sidecar.stop();
        let late = result.stopped_after.is_none();
        run.containers.push(result);
        if late && outcome.is_ok() {
            outcome = Err(anyhow::anyhow!(
                "sidecar {name} did not exit within {}s of SIGTERM (killed)",
                SIDECAR_GRACE.as_secs()
            ));
        }
    }
    outcome
}

/// How often `secret` volumes are re-read while sidecars run (the kubelet's sync period is a
/// minute or more plus its cache TTL; tests want a change within a second).
const VOLUME_SYNC: Duration = Duration::from_millis(500);
/// How long a sidecar may take to exit after SIGTERM before the run fails.
pub const SIDECAR_GRACE: Duration = Duration::from_secs(3);

/// A `secret` volume the runner keeps current, as the kubelet does.
struct SecretVolume {
    host: PathBuf,
    secret: Value,
    mode: u32,
    files: Vec<VolumeFile>,
}

/// A container's stdout and stderr, in files (read once it has exited).
struct Captured {
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Captured {
    fn new(dir: &Path, name: &str) -> anyhow::Result<Self> {
        Ok(Self {
            stdout: dir.join(format!("stdout-{name}")),
            stderr: dir.join(format!("stderr-{name}")),
        })
    }

    fn spawn(&self, mut cmd: Command) -> std::io::Result<Child> {
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&self.stdout)?)
            .stderr(std::fs::File::create(&self.stderr)?)
            .spawn()
    }

    fn read(&self) -> (String, String) {
        let read =
            |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        (read(&self.stdout), read(&self.stderr))
    }
}

/// A running native sidecar.
struct Sidecar {
    name: String,
    child: Child,
    out: Captured,
    termination: PathBuf,
}

impl Sidecar {
    fn result(&self, status: Option<ExitStatus>, stopped_after: Option<Duration>) -> ContainerRun {
        let (stdout, stderr) = self.out.read();
        ContainerRun {
            name: self.name.clone(),
            init: true,
            sidecar: true,
            code: status.and_then(|s| s.code()),
            stdout,
            stderr,
            termination_message: std::fs::read_to_string(&self.termination).unwrap_or_default(),
            stopped_after,
        }
    }

    fn kill(mut self) -> ContainerRun {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        self.result(status, None)
    }

    /// SIGTERM to the container's processes (not the sandbox's own), then up to
    /// [`SIDECAR_GRACE`] for it to exit; killed after that (`stopped_after: None`).
    fn stop(mut self) -> ContainerRun {
        let asked = Instant::now();
        let pids: Vec<String> = container_processes(self.child.id())
            .iter()
            .map(i32::to_string)
            .collect();
        if !pids.is_empty() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .args(&pids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        while asked.elapsed() < SIDECAR_GRACE {
            if let Ok(Some(status)) = self.child.try_wait() {
                return self.result(Some(status), Some(asked.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill()
    }
}

/// The processes below `root` that are the container's own (not bwrap or setpriv).
fn container_processes(root: u32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32, String)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        parent_of.push((pid, ppid, comm));
    }
    let mut below = vec![root as i32];
    let mut i = 0;
    while i < below.len() {
        let p = below[i];
        below.extend(
            parent_of
                .iter()
                .filter(|(_, pp, _)| *pp == p)
                .map(|(c, _, _)| *c),
        );
        i += 1;
    }
    parent_of
        .iter()
        .filter(|(pid, _, comm)| {
            *pid != root as i32 && below.contains(pid) && comm != "bwrap" && comm != "setpriv"
        })
        .map(|(pid, _, _)| *pid)
        .collect()
}

/// Waits for a sidecar's `startupProbe` (exec) to pass, as the kubelet runs it: after
/// `initialDelaySeconds`, every `periodSeconds`, at most `failureThreshold` failures, each
/// attempt bounded by `timeoutSeconds`. The probe runs with the container's mounts, env and
/// user. Without a probe the sidecar counts as started at once.
fn await_startup(
    container: &Value,
    sidecar: &mut Sidecar,
    sandboxed: &dyn Fn(&Value) -> anyhow::Result<Command>,
) -> anyhow::Result<()> {
    let Some(probe) = container.get("startupProbe") else {
        return Ok(());
    };
    let command = probe["exec"]["command"].clone();
    if !command.is_array() {
        bail!("startupProbe: only exec probes are supported by this runner");
    }
    let secs =
        |key: &str, default: u32| Duration::from_secs(int_of(probe, key).unwrap_or(default).into());
    let (period, timeout) = (secs("periodSeconds", 10), secs("timeoutSeconds", 1));
    let threshold = int_of(probe, "failureThreshold").unwrap_or(3);
    std::thread::sleep(secs("initialDelaySeconds", 0));
    let mut spec = container.clone();
    spec["command"] = command;
    if let Some(map) = spec.as_object_mut() {
        map.remove("args");
        map.remove("restartPolicy");
    }
    let mut last = String::new();
    for _ in 0..threshold {
        if let Some(status) = sidecar.child.try_wait()? {
            bail!(
                "sidecar {} exited ({status}) before its startupProbe passed",
                sidecar.name
            );
        }
        let mut cmd = sandboxed(&spec)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let output = child.wait_with_output()?;
        if status.is_some_and(|s| s.success()) {
            return Ok(());
        }
        last = format!(
            "{:?}: {}{}",
            status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(period);
    }
    bail!(
        "sidecar {}: startupProbe failed {threshold} times (last: {last})",
        sidecar.name
    )
}

/// Waits for `child`, calling `tick` every [`VOLUME_SYNC`] meanwhile.
fn wait_polling(child: &mut Child, mut tick: impl FnMut()) -> std::io::Result<ExitStatus> {
    let mut last = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if last.elapsed() >= VOLUME_SYNC {
            tick();
            last = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Re-reads every `secret` volume's Secret and publishes a changed one as the kubelet does
/// ([`kubelet_update`]); a read that fails keeps the old contents, as the kubelet does.
fn sync_secret_volumes(volumes: &mut [SecretVolume], cluster: &dyn Cluster, namespace: &str) {
    for v in volumes {
        let Ok(files) = secret_files(&v.secret, cluster, namespace) else {
            continue;
        };
        if files != v.files && kubelet_update(&v.host, &files, v.mode).is_ok() {
            v.files = files;
        }
    }
}

/// The kubelet's atomic update of a volume: the new set in a fresh `..<stamp>` directory,
/// links for new top-level names, one rename of `..data`, then the old set and the links of
/// names that left are removed. A reader through `..data` sees the old set or the new one.
pub fn kubelet_update(
    volume: &Path,
    files: &[VolumeFile],
    default_mode: u32,
) -> std::io::Result<()> {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let stamp = format!(
        "..sync_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let data_dir = volume.join(&stamp);
    std::fs::create_dir(&data_dir)?;
    let mut tops = std::collections::BTreeSet::new();
    for (path, bytes, mode) in files {
        let file = data_dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, bytes)?;
        std::fs::set_permissions(
            &file,
            std::fs::Permissions::from_mode(mode.unwrap_or(default_mode)),
        )?;
        tops.insert(path.split('/').next().unwrap_or(path).to_string());
    }
    for top in &tops {
        if std::fs::symlink_metadata(volume.join(top)).is_err() {
            symlink(format!("..data/{top}"), volume.join(top))?;
        }
    }
    let old = std::fs::read_link(volume.join("..data")).ok();
    let tmp = volume.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, volume.join("..data"))?;
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(volume.join(old));
    }
    for entry in std::fs::read_dir(volume)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// A `secret` volume's files: the listed `items` (or every key), read with the kubelet's rights.
fn secret_files(
    secret: &Value,
    cluster: &dyn Cluster,
    namespace: &str,
) -> anyhow::Result<Vec<VolumeFile>> {
    let name = str_of(secret, "secretName").context("secret volume without secretName")?;
    let optional = secret.get("optional").and_then(Value::as_bool) == Some(true);
    let Some(data) = cluster.secret_data(namespace, name) else {
        if optional {
            return Ok(Vec::new());
        }
        bail!("Secret {namespace}/{name} not found: the pod cannot start (FailedMount)");
    };
    let Some(items) = secret.get("items").and_then(Value::as_array) else {
        return Ok(data.into_iter().map(|(k, v)| (k, v, None)).collect());
    };
    let mut files = Vec::new();
    for item in items {
        let key = str_of(item, "key").context("item without key")?;
        let path = str_of(item, "path").context("item without path")?;
        match data.get(key) {
            Some(bytes) => files.push((path.to_string(), bytes.clone(), int_of(item, "mode"))),
            None if optional => {}
            None => bail!("Secret {namespace}/{name} has no key {key}: the pod cannot start"),
        }
    }
    Ok(files)
}

/// One source of a `projected` volume, as the kubelet fills it.
fn projected_source(
    source: &Value,
    cluster: &dyn Cluster,
    (namespace, service_account): (&str, &str),
    (pod_name, pod_uid): (&str, &str),
) -> anyhow::Result<Vec<VolumeFile>> {
    if let Some(t) = source.get("serviceAccountToken") {
        let token = cluster.pod_token(
            namespace,
            service_account,
            str_of(t, "audience"),
            t.get("expirationSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(3600),
            (pod_name, pod_uid),
        )?;
        let path = str_of(t, "path").context("serviceAccountToken without path")?;
        return Ok(vec![(path.to_string(), token.into_bytes(), None)]);
    }
    if let Some(cm) = source.get("configMap") {
        // Only the CA every namespace gets (kube-root-ca.crt).
        if str_of(cm, "name") != Some("kube-root-ca.crt") {
            bail!(
                "projected configMap {:?}: only kube-root-ca.crt is supported",
                cm["name"]
            );
        }
        return Ok(cm["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| str_of(i, "path"))
            .map(|p| (p.to_string(), cluster.ca_pem().into_bytes(), None))
            .collect());
    }
    if let Some(d) = source.get("downwardAPI") {
        let mut files = Vec::new();
        for item in d["items"].as_array().into_iter().flatten() {
            let field = item["fieldRef"]["fieldPath"].as_str().unwrap_or_default();
            let value = match field {
                "metadata.namespace" => namespace,
                "metadata.name" => pod_name,
                "metadata.uid" => pod_uid,
                other => bail!("downwardAPI field {other:?} is not supported by this runner"),
            };
            let path = str_of(item, "path").context("downwardAPI item without path")?;
            files.push((path.to_string(), value.as_bytes().to_vec(), None));
        }
        return Ok(files);
    }
    bail!("projected source {source}: not supported by this runner")
}

/// Where task containers get a writable tmpfs (and their HOME/TMPDIR): `/tmp`, unless the
/// workspace is under it — then `/var/tmp`, so the bound host root still shows the venv.
fn scratch_dir() -> &'static str {
    if flyte_secret_testkit::servers::workspace_root().starts_with("/tmp") {
        "/var/tmp"
    } else {
        "/tmp"
    }
}

/// Kubernetes quantities for sizes (`16Mi`, `1G`, plain bytes).
fn k8s_bytes(q: &str) -> u64 {
    let (num, mult) = [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ]
    .iter()
    .find_map(|(suffix, m)| q.strip_suffix(suffix).map(|n| (n, *m)))
    .unwrap_or((q, 1));
    num.parse::<u64>().unwrap_or(64) * mult
}

#[allow(clippy::too_many_arguments)]
fn sandbox(
    container: &Value,
    pod_sc: &Value,
    volumes: &BTreeMap<String, PathBuf>,
    termination: &Path,
    cluster: &dyn Cluster,
    namespace: &str,
    (host, port): (&str, &str),
) -> anyhow::Result<Command> {
    let sc = container
        .get("securityContext")
        .cloned()
        .unwrap_or(Value::Null);
    let image = str_of(container, "image").unwrap_or_default();
    let agent_image = image == AGENT_IMAGE;
    let uid = int_of(&sc, "runAsUser")
        .or_else(|| int_of(pod_sc, "runAsUser"))
        .unwrap_or(if agent_image { 65532 } else { 0 });
    let gid = int_of(&sc, "runAsGroup")
        .or_else(|| int_of(pod_sc, "runAsGroup"))
        .unwrap_or(if agent_image { 65532 } else { 0 });
    let mut groups: Vec<u32> = pod_sc["supplementalGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_u64().and_then(|g| u32::try_from(g).ok()))
        .collect();
    if let Some(g) = int_of(pod_sc, "fsGroup") {
        groups.push(g);
    }

    let mut bw: Vec<String> = Vec::new();
    let mut arg = |a: &str| bw.push(a.to_string());
    if uid != 0 {
        arg("--unshare-user");
        arg("--uid");
        arg(&uid.to_string());
        arg("--gid");
        arg(&gid.to_string());
    }
    if str_of(container, "restartPolicy") == Some("Always") {
        // As in a pod, the sidecar's process is PID 1 of its namespace: a signal it does not
        // handle is ignored, so SIGTERM tests its handler, not the default action.
        arg("--as-pid-1");
    }
    for a in [
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ] {
        arg(a);
    }
    if agent_image {
        // FROM scratch: the binary and a CA bundle, nothing else.
        let agent = crate::static_agent();
        bw.extend([
            "--ro-bind".into(),
            agent.display().to_string(),
            "/agent".into(),
        ]);
        let ca = "/etc/ssl/certs/ca-certificates.crt";
        bw.extend(["--ro-bind".into(), ca.into(), ca.into()]);
    } else {
        bw.extend(["--ro-bind", "/", "/"].map(String::from));
        // A writable scratch tmpfs. Not over /tmp when the checkout (and its venv, which the
        // task's Python imports flytekit from) lives under /tmp, as a CI clone may.
        bw.extend(["--tmpfs".to_string(), scratch_dir().to_string()]);
    }
    bw.extend(["--proc", "/proc", "--dev", "/dev"].map(String::from));
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let vname = str_of(m, "name").unwrap_or_default();
        let path = str_of(m, "mountPath").context("volumeMount without mountPath")?;
        let source = volumes
            .get(vname)
            .with_context(|| format!("volumeMount of unknown volume {vname}"))?;
        let read_only = m.get("readOnly").and_then(Value::as_bool).unwrap_or(false);
        let source = std::fs::canonicalize(source)?;
        if !agent_image && !Path::new(path).exists() {
            // The "image" is the host's root, bound read-only: like a runtime creating mount
            // points in an image's rootfs, create the empty mount point on the host.
            std::fs::create_dir_all(path)
                .with_context(|| format!("creating mount point {path}"))?;
        }
        // bwrap does not follow symlinks in a destination (/var/run → /run): resolve them.
        let dest = if agent_image {
            path.to_string()
        } else {
            std::fs::canonicalize(path)?.display().to_string()
        };
        bw.extend([
            if read_only { "--ro-bind" } else { "--bind" }.to_string(),
            source.display().to_string(),
            dest,
        ]);
    }
    let tpath = str_of(container, "terminationMessagePath").unwrap_or("/dev/termination-log");
    bw.extend([
        "--bind".into(),
        termination.display().to_string(),
        tpath.to_string(),
    ]);
    if !agent_image {
        bw.extend(
            [
                "--setenv",
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ]
            .map(String::from),
        );
        bw.extend([
            "--setenv".to_string(),
            "HOME".to_string(),
            scratch_dir().to_string(),
        ]);
        bw.extend([
            "--setenv".to_string(),
            "TMPDIR".to_string(),
            scratch_dir().to_string(),
        ]);
    }
    bw.extend([
        "--setenv".into(),
        "KUBERNETES_SERVICE_HOST".into(),
        host.into(),
    ]);
    bw.extend([
        "--setenv".into(),
        "KUBERNETES_SERVICE_PORT".into(),
        port.into(),
    ]);
    // The kubelet's env: each `value` expanded against the vars defined before it, then the
    // service env (`makeEnvironmentVariables`); later definitions replace earlier ones.
    let service_env = [
        ("KUBERNETES_SERVICE_HOST", host),
        ("KUBERNETES_SERVICE_PORT", port),
    ];
    let mut defined: BTreeMap<String, String> = BTreeMap::new();
    let lookup = |defined: &BTreeMap<String, String>, name: &str| -> Option<String> {
        defined.get(name).cloned().or_else(|| {
            service_env
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    };
    for e in container["env"].as_array().into_iter().flatten() {
        let name = str_of(e, "name").context("env without a name")?;
        let value = if let Some(r) = e.get("valueFrom").and_then(|v| v.get("secretKeyRef")) {
            let secret = str_of(r, "name").unwrap_or_default();
            let key = str_of(r, "key").unwrap_or_default();
            match cluster.secret_key(namespace, secret, key) {
                Some(bytes) => {
                    String::from_utf8(bytes).context("secretKeyRef value is not UTF-8")?
                }
                None if r.get("optional").and_then(Value::as_bool) == Some(true) => continue,
                None => bail!("secretKeyRef {secret}/{key} not found (CreateContainerConfigError)"),
            }
        } else if e.get("valueFrom").is_some() {
            bail!("env {name}: only secretKeyRef is supported by this runner");
        } else {
            let raw = str_of(e, "value").unwrap_or_default();
            expand(raw, &|n| lookup(&defined, n))
        };
        defined.insert(name.to_string(), value.clone());
        bw.extend(["--setenv".into(), name.into(), value]);
    }
    if sc.get("readOnlyRootFilesystem").and_then(Value::as_bool) == Some(true) {
        bw.extend(["--remount-ro", "/"].map(String::from));
    }
    // `ExpandContainerCommandAndArgs`: against the container's whole env.
    let expand_all = |v: &Value| -> Vec<String> {
        strings(v)
            .iter()
            .map(|s| expand(s, &|n| lookup(&defined, n)))
            .collect()
    };
    let command: Vec<String> = expand_all(&container["command"]);
    let args: Vec<String> = expand_all(&container["args"]);
    let entrypoint = if command.is_empty() {
        if agent_image {
            vec!["/agent".to_string()]
        } else {
            Vec::new()
        }
    } else {
        command
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(args).collect();
    if argv.is_empty() {
        bail!(
            "container {} has no command (images here have no entrypoint)",
            str_of(container, "name").unwrap_or("?")
        );
    }
    bw.push("--".into());
    bw.extend(argv);

    let mut cmd = if uid != 0 {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"));
        if groups.is_empty() {
            c.arg("--clear-groups");
        } else {
            c.arg(format!(
                "--groups={}",
                groups
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        c.arg("--").arg("bwrap");
        c
    } else {
        Command::new("bwrap")
    };
    cmd.args(bw).env_clear();
    Ok(cmd)
}

pub use flyte_secret_testkit::kubelet::expand;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn expansion_follows_the_kubelet() {
        let vars = |n: &str| match n {
            "HOME" => Some("/root".to_string()),
            "EMPTY" => Some(String::new()),
            "REF" => Some("$(HOME)".to_string()),
            _ => None,
        };
        for (input, want) in [
            ("plain", "plain"),
            ("$(HOME)", "/root"),
            ("a$(HOME)b$(HOME)", "a/rootb/root"),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$$", "$"),
            ("$$(HOME)", "$(HOME)"),
            ("$$$(HOME)", "$/root"),
            ("$$$$", "$$"),
            ("$", "$"),
            ("a$", "a$"),
            ("$x$(HOME)", "$x/root"),
            ("$(HOME", "$(HOME"),
            ("$(", "$("),
            ("$()", "$()"),
            ("$(EMPTY)x", "x"),
            ("$(REF)", "$(HOME)"),
            ("é$(HOME)ü$é", "é/rootü$é"),
        ] {
            assert_eq!(expand(input, &vars), want, "{input}");
        }
    }
}
