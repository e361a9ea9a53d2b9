//! `agent watch` and `agent ready`, black-box: the real binary after a real `agent init`,
//! against kubelet-style `secret` volumes updated the way the kubelet updates them (a new
//! `..<stamp>` set and one rename of `..data`) and against moto (a rotated AWS secret). It
//! checks that a change is published as one new set with a bumped version marker, that a
//! failing round keeps the last good files and says so in the status, `agent ready`'s exit
//! codes, that SIGTERM ends the watcher with 0 at once, and that Vault database credentials
//! with a short lease are fetched again at 90% of it, username and password together, and
//! log in to the real PostgreSQL.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use flyte_secret_spec::backend::{AwsBackend, KubernetesBackend};
use flyte_secret_spec::env::PLAN_ENV;
use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_spec::{Backend, SecretRequest};
use flyte_secret_testkit::servers::Servers;

const STATE: &str = "..flyte-secret-agent";

/// Replaces a kubelet volume's contents as the kubelet does: a fresh `..<stamp>` set, then
/// one rename of `..data` (top-level links already point through it).
fn kubelet_update(volume: &Path, data: &[(&str, &[u8])]) {
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let dir = volume.join(&stamp);
    std::fs::create_dir(&dir).unwrap();
    for (k, v) in data {
        std::fs::write(dir.join(k), v).unwrap();
        if std::fs::symlink_metadata(volume.join(k)).is_err() {
            symlink(format!("..data/{k}"), volume.join(k)).unwrap();
        }
    }
    let tmp = volume.join("..data_tmp");
    symlink(&stamp, &tmp).unwrap();
    std::fs::rename(&tmp, volume.join("..data")).unwrap();
}

struct Watch {
    child: Child,
    log: PathBuf,
}

impl Watch {
    fn start(home: &Path, plan: &FetchPlan, root: &Path, env: &[(&str, String)]) -> Self {
        Self::every("1s", home, plan, root, env)
    }

    fn every(
        interval: &str,
        home: &Path,
        plan: &FetchPlan,
        root: &Path,
        env: &[(&str, String)],
    ) -> Self {
        let log = home.join("watch.log");
        let mut cmd = agent(home);
        cmd.args(["watch", "--interval", interval])
            .env(PLAN_ENV, plan.to_json())
            .env("FLYTE_SECRET_ROOT", root)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self {
            child: cmd.spawn().expect("start agent watch"),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; the watcher must exit 0 within a second.
    fn terminate(mut self) -> String {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let asked = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "watch exited {status}:\n{}", self.log());
                break;
            }
            assert!(
                asked.elapsed() < Duration::from_secs(1),
                "watch still running 1s after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.log()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `agent ready --root <root>` and its exit code.
fn ready(home: &Path, root: &Path, extra: &[&str]) -> (i32, String) {
    let out = agent(home)
        .arg("ready")
        .arg("--root")
        .arg(root)
        .args(extra)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), printed(&out))
}

fn version(root: &Path) -> Option<u64> {
    std::fs::read_to_string(root.join(STATE).join("version"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn status(root: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root.join(STATE).join("status")).unwrap())
        .unwrap()
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_kubelet_volume_update_is_published_as_one_new_set_and_failures_keep_the_last_files() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let volumes = home.path().join("volumes");
    let (old_a, old_b, new_a, new_b) = (canary(), canary(), canary(), canary());
    let volume = kubelet_volume(
        &volumes,
        "db",
        &[("user", old_a.as_bytes()), ("pass", old_b.as_bytes())],
    );
    let p = plan(
        vec![Backend::Kubernetes(KubernetesBackend::default())],
        None,
        &[
            SecretRequest::new("db", "user"),
            SecretRequest::new("db", "pass"),
        ],
    );
    let env = volume_env(&volumes);
    let (out, termination) = init(home.path(), &p, root, &pairs(&env));
    assert_ok(&out);
    // Before any watcher: nothing to be ready about.
    assert_eq!(ready(home.path(), root, &[]).0, 1);

    let watch = Watch::start(home.path(), &p, root, &env);
    // The watcher adopts what init published: ready at once, version 1, no refetch needed.
    wait_for("agent ready", Duration::from_secs(5), || {
        ready(home.path(), root, &[]).0 == 0
    });
    assert_eq!(version(root), Some(1));
    let first_set = std::fs::read_link(root.join("..data")).unwrap();

    // Both keys change in one kubelet update: one new set, one version bump.
    kubelet_update(
        &volume,
        &[("user", new_a.as_bytes()), ("pass", new_b.as_bytes())],
    );
    wait_for("the new values", Duration::from_secs(5), || {
        std::fs::read(root.join("db/user")).unwrap() == new_a.as_bytes()
    });
    assert_eq!(
        std::fs::read(root.join("db/pass")).unwrap(),
        new_b.as_bytes()
    );
    // The marker moves right after the files (an app watching it finds them in place).
    wait_for("version 2", Duration::from_secs(1), || {
        version(root) == Some(2)
    });
    assert_ne!(std::fs::read_link(root.join("..data")).unwrap(), first_set);
    assert_eq!(listing(root), ["db/pass", "db/user"]);
    // Unchanged rounds publish nothing.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(version(root), Some(2));
    assert_eq!(status(root)["consecutive_failures"], 0);

    // The Secret's key disappears: rounds fail, the last good files stay, the status says why.
    kubelet_update(&volume, &[("user", new_a.as_bytes())]);
    std::fs::remove_file(volume.join("pass")).unwrap();
    wait_for("a failed round", Duration::from_secs(5), || {
        status(root)["consecutive_failures"].as_u64() >= Some(1)
    });
    let st = status(root);
    assert!(
        st["last_error"].as_str().unwrap().contains("db/pass"),
        "{st}"
    );
    assert_eq!(
        std::fs::read(root.join("db/pass")).unwrap(),
        new_b.as_bytes()
    );
    assert_eq!(version(root), Some(2));
    // Still fresh by default (the last success is recent); stale with a tight --max-age.
    assert_eq!(ready(home.path(), root, &[]).0, 0);
    std::thread::sleep(Duration::from_millis(2100));
    let (code, said) = ready(home.path(), root, &["--max-age", "1s"]);
    assert_eq!(code, 3, "{said}");
    assert!(said.contains("db/pass"), "{said}");

    let log = watch.terminate();
    for value in [&old_a, &old_b, &new_a, &new_b] {
        assert!(!log.contains(value.as_str()), "a value leaked:\n{log}");
        assert!(!st.to_string().contains(value.as_str()));
    }
    assert_no_leak(&out, &termination, &new_a);
    assert!(log.contains("published a changed set"), "{log}");
}

#[test]
fn a_standalone_watcher_publishes_first_and_ready_waits_for_it() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let volumes = home.path().join("volumes");
    let value = canary();
    kubelet_volume(&volumes, "g", &[("k", value.as_bytes())]);
    let p = plan(
        vec![Backend::Kubernetes(KubernetesBackend::default())],
        None,
        &[SecretRequest::new("g", "k")],
    );
    let watch = Watch::start(home.path(), &p, root, &volume_env(&volumes));
    wait_for("the first publish", Duration::from_secs(5), || {
        ready(home.path(), root, &[]).0 == 0
    });
    assert_eq!(std::fs::read(root.join("g/k")).unwrap(), value.as_bytes());
    assert_eq!(version(root), Some(1));
    watch.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_aws_secret_reaches_the_files() {
    let s = Servers::load();
    let c = aws_admin(&s);
    let name = unique("rotate");
    let (v1, v2) = (canary(), canary());
    c.create_secret()
        .name(format!("{name}:token"))
        .secret_string(&v1)
        .send()
        .await
        .unwrap();
    let p = plan(
        vec![Backend::Aws(AwsBackend {
            region: Some(s.aws.region.clone()),
            endpoint: Some(s.aws.endpoint.clone()),
        })],
        None,
        &[SecretRequest::new(&name, "token")],
    );
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let root = root.path().to_path_buf();
    let (out, _) = init(home.path(), &p, &root, &[]);
    assert_ok(&out);
    let watch = Watch::start(home.path(), &p, &root, &[]);
    c.put_secret_value()
        .secret_id(format!("{name}:token"))
        .secret_string(&v2)
        .send()
        .await
        .unwrap();
    let file = root.join(format!("{name}/token"));
    let wait_root = root.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the rotated value", Duration::from_secs(10), || {
            std::fs::read(&file).unwrap() == v2.as_bytes()
        });
        wait_for("version 2", Duration::from_secs(1), || {
            version(&wait_root) == Some(2)
        });
    })
    .await
    .unwrap();
    let log = watch.terminate();
    assert!(!log.contains(&v1), "{log}");
}

/// A database role like the servers' `flyte-db` with a 6s lease (idempotent: the servers are
/// shared by runs), allowed on the servers' PostgreSQL connection.
async fn short_lease_role(s: &Servers) -> String {
    let role = "flyte-db-watch";
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let api = |path: &str| format!("{}/v1/{}/{path}", s.vault.addr, s.vault.db_mount);
    let get = |path: String| {
        let req = http.get(path).header("X-Vault-Token", &s.vault.token);
        async move {
            let body = req.send().await.unwrap().bytes().await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        }
    };
    let post = |path: String, body: serde_json::Value| {
        let req = http
            .post(path)
            .header("X-Vault-Token", &s.vault.token)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        async move {
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    };
    let template = get(api(&format!("roles/{}", s.vault.db_role))).await;
    let connection = template["data"]["db_name"].as_str().unwrap().to_string();
    let config = get(api(&format!("config/{connection}"))).await;
    let mut allowed: Vec<String> =
        serde_json::from_value(config["data"]["allowed_roles"].clone()).unwrap();
    if !allowed.iter().any(|r| r == role) {
        allowed.push(role.into());
        post(
            api(&format!("config/{connection}")),
            serde_json::json!({"allowed_roles": allowed, "verify_connection": false}),
        )
        .await;
    }
    post(
        api(&format!("roles/{role}")),
        serde_json::json!({
            "db_name": connection,
            "creation_statements": template["data"]["creation_statements"],
            "default_ttl": "6s",
            "max_ttl": "1h",
        }),
    )
    .await;
    format!("{}/creds/{role}", s.vault.db_mount)
}

/// A plan for the username and password of the database credentials at `group` from `vault`.
fn db_plan(vault: flyte_secret_spec::backend::VaultBackend, group: &str) -> FetchPlan {
    plan(
        vec![Backend::Vault(vault)],
        None,
        &[
            SecretRequest::new(group, "username").with_group_version("db"),
            SecretRequest::new(group, "password").with_group_version("db"),
        ],
    )
}

/// A directory `agent init` has published into with the suites' Vault token: its home, the
/// root (kept by `_dir`) and the token env the watcher needs too.
struct TokenInit {
    home: tempfile::TempDir,
    _dir: tempfile::TempDir,
    root: PathBuf,
    token: [(&'static str, String); 1],
}

/// `agent init` of `p` with the suites' Vault token, asserted to succeed.
fn init_with_token(s: &Servers, p: &FetchPlan) -> TokenInit {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let token = [("VAULT_TOKEN", s.vault.token.clone())];
    let (out, _) = init(home.path(), p, &root, &pairs(&token));
    assert_ok(&out);
    TokenInit {
        home,
        _dir: dir,
        root,
        token,
    }
}

fn psql_login(s: &Servers, user: &str, password: &str) -> Result<(), String> {
    let out = std::process::Command::new(&s.tools.psql)
        .args(["-h", &s.postgres.host, "-p", &s.postgres.port.to_string()])
        .args(["-U", user, "-d", &s.postgres.database, "-tAc", "select 1"])
        .env("PGPASSWORD", password)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_credentials_are_fetched_again_at_ninety_percent_of_their_lease() {
    let s = Servers::load();
    let group = short_lease_role(&s).await;
    let p = db_plan(vault_token_backend(&s.vault.addr), &group);
    let TokenInit {
        home,
        _dir,
        root,
        token,
    } = init_with_token(&s, &p);
    let read = |name: &str| std::fs::read_to_string(root.join(format!("{group}/{name}"))).unwrap();
    let first_user = read("username");
    // An hour between rounds: only the lease (6s, due at 5.4s) makes the watcher fetch.
    let watch = Watch::every("1h", home.path(), &p, &root, &token);
    let started = Instant::now();
    let (root2, group2) = (root.clone(), group.clone());
    let s2 = s.clone();
    let result = tokio::task::spawn_blocking(move || {
        let read =
            |name: &str| std::fs::read_to_string(root2.join(format!("{group2}/{name}"))).unwrap();
        let mut users = vec![first_user];
        for round in 1..=2 {
            wait_for("new database credentials", Duration::from_secs(12), || {
                version(&root2) == Some(round + 1)
            });
            let (user, password, creds) = (read("username"), read("password"), read(".creds"));
            // One read, one swap: the pair and the creds file agree.
            assert!(creds.contains(&format!("username: {user}\n")), "{creds}");
            assert!(
                creds.contains(&format!("password: {password}\n")),
                "{creds}"
            );
            assert!(
                !users.contains(&user),
                "credentials were not renewed: {user}"
            );
            psql_login(&s2, &user, &password).unwrap();
            users.push(user);
        }
        // Two new credentials in about two lease periods, not one per poll.
        let elapsed = started.elapsed().as_secs_f64();
        assert!(
            (9.0..=14.0).contains(&elapsed),
            "{elapsed:.1}s for two leases"
        );
        assert_eq!(version(&root2), Some(3));
    })
    .await;
    if let Err(e) = result {
        panic!("{e}\nthe watcher's log:\n{}", watch.log());
    }
    let log = watch.terminate();
    assert!(log.contains("database lease due"), "{log}");
    assert!(log.contains("fetched again at 90%"), "{log}");
}

/// Credentials that expired and could not be fetched again are removed, not left stale: with
/// OpenBao unreachable (a proxy gone down) when the 6s lease is due, the round fails, the
/// username, password and `.creds` leave the published set once the lease has ended, and the
/// status records the failed round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_database_credentials_that_cannot_be_fetched_again_are_removed() {
    use flyte_secret_testkit::fault::FaultProxy;
    let s = Servers::load();
    let group = short_lease_role(&s).await;
    let proxy = FaultProxy::start(http_addr(&s.vault.addr)).await.unwrap();
    let mut p = db_plan(vault_token_backend(&proxy.url()), &group);
    // A short round: it fails within 2s of the lease falling due (5.4s), before 8s.
    p.timeouts.request_seconds = 1;
    p.timeouts.deadline_seconds = 2;
    let TokenInit {
        home,
        _dir,
        root,
        token,
    } = init_with_token(&s, &p);
    let file = |name: &str| root.join(format!("{group}/{name}"));
    assert!(file("username").exists() && file(".creds").exists());
    let watch = Watch::every("1h", home.path(), &p, &root, &token);
    wait_for("the watcher's first status", Duration::from_secs(5), || {
        root.join(STATE).join("status").exists()
    });
    proxy.set_down(true);
    let started = Instant::now();
    let (root2, group2) = (root.clone(), group.clone());
    let result = tokio::task::spawn_blocking(move || {
        wait_for(
            "the expired credentials to be removed",
            Duration::from_secs(15),
            || !root2.join(format!("{group2}/username")).exists(),
        );
        for name in ["password", ".creds"] {
            assert!(
                !root2.join(format!("{group2}/{name}")).exists(),
                "{name} left"
            );
        }
    })
    .await;
    if let Err(e) = result {
        panic!("{e}\nthe watcher's log:\n{}", watch.log());
    }
    // Not before the lease ended (6s after init; the proxy went down a moment later).
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let st = status(&root);
    assert!(st["consecutive_failures"].as_u64() >= Some(1), "{st}");
    assert!(!st["last_error"].as_str().unwrap_or("").is_empty(), "{st}");
    let log = watch.terminate();
    assert!(
        log.contains("removed expired database credentials that could not be fetched again"),
        "{log}"
    );
}

/// `agent exec` with `FLYTE_SECRET_ON_CHANGE`: it stays the program's parent, and when the
/// watcher publishes a new set it restarts the program with the new environment (`restart`)
/// or sends it the configured signal (`SIGUSR1`); SIGTERM reaches the program, whose exit
/// code `agent exec` returns.
#[test]
fn agent_exec_restarts_or_signals_the_program_when_the_set_changes() {
    use flyte_secret_spec::request::MountRequirement;
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let volumes = home.path().join("volumes");
    let (old, new) = (canary(), canary());
    let volume = kubelet_volume(&volumes, "app", &[("token", old.as_bytes())]);
    let p = plan(
        vec![Backend::Kubernetes(KubernetesBackend::default())],
        None,
        &[SecretRequest::new("app", "token")
            .with_mount(MountRequirement::EnvVar)
            .with_env_var("TOKEN")],
    );
    let env = volume_env(&volumes);
    let (out, _) = init(home.path(), &p, root, &pairs(&env));
    assert_ok(&out);
    let watch = Watch::start(home.path(), &p, root, &env);
    wait_for("agent ready", Duration::from_secs(5), || {
        ready(home.path(), root, &[]).0 == 0
    });
    // The program records which value its environment has (length and last 4 characters
    // tell the two canaries apart) and the signals it gets.
    let script = r#"echo "start ${#TOKEN} ${TOKEN#"${TOKEN%????}"}" >> "$OUT"
trap 'echo usr1 >> "$OUT"' USR1
trap 'echo term >> "$OUT"; exit 7' TERM
while :; do sleep 0.1; done"#;
    let exec = |mode: &str, out: &Path| {
        agent(home.path())
            .args(["exec", "--", "/bin/sh", "-c", script])
            .env(PLAN_ENV, p.to_json())
            .env("FLYTE_SECRET_ROOT", root)
            .env("FLYTE_SECRET_ON_CHANGE", mode)
            .env("FLYTE_SECRET_ON_CHANGE_POLL_SECONDS", "1")
            .env("OUT", out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (restart_out, signal_out) = (home.path().join("restart"), home.path().join("signal"));
    let mut restart = exec("restart", &restart_out);
    let mut signal = exec("SIGUSR1", &signal_out);
    let lines = |path: &Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    };
    let tail = |v: &str| format!("start {} {}", v.len(), &v[v.len() - 4..]);
    wait_for("both programs started", Duration::from_secs(5), || {
        lines(&restart_out).len() == 1 && lines(&signal_out).len() == 1
    });
    assert_eq!(lines(&restart_out), [tail(&old)]);

    kubelet_update(&volume, &[("token", new.as_bytes())]);
    wait_for(
        "the restart and the signal",
        Duration::from_secs(10),
        || lines(&restart_out).len() >= 3 && lines(&signal_out).len() >= 2,
    );
    // Restarted: stopped with SIGTERM, started again with the new value in its env.
    assert_eq!(lines(&restart_out), [tail(&old), "term".into(), tail(&new)]);
    // Signalled: the same process, told once.
    assert_eq!(lines(&signal_out), [tail(&old), "usr1".into()]);

    // SIGTERM to `agent exec` reaches the program; its exit code is agent exec's.
    for child in [&mut restart, &mut signal] {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }
    for child in [&mut restart, &mut signal] {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "agent exec hangs"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(7));
    }
    assert_eq!(lines(&signal_out).last().map(String::as_str), Some("term"));
    watch.terminate();
}

/// One set of database credentials: `agent init` (kubernetes auth) hands its Vault token and
/// lease over through the handover directory (one 0400 file); `agent watch` renews that
/// lease (5 s TTL) instead of fetching new credentials, so the same user still logs in after
/// its first TTL; with `--revoke-on-exit`, SIGTERM revokes the token and with it the lease
/// (the user is dropped at once). The token appears in no log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handed_over_lease_is_renewed_and_revoked_on_exit() {
    use flyte_secret_spec::backend::{VaultAuth, VaultBackend};
    use std::os::unix::fs::PermissionsExt;
    let s = Servers::load();
    let home = tempfile::tempdir().unwrap();
    let sa_token = home.path().join("sa-token");
    std::fs::write(
        &sa_token,
        s.kube
            .service_account_token("flytesnacks-development", "default", None),
    )
    .unwrap();
    let group = format!("{}/creds/flyte-db-short", s.vault.db_mount);
    let p = db_plan(
        VaultBackend {
            auth: VaultAuth::Kubernetes {
                role: s.vault.role.clone(),
                mount: s.vault.k8s_auth_mount.clone(),
                token_file: sa_token.display().to_string(),
            },
            ..vault_token_backend(&s.vault.addr)
        },
        &group,
    );
    let handover = home.path().join("handover");
    std::fs::create_dir(&handover).unwrap();
    let env = [(
        "FLYTE_SECRET_VAULT_HANDOVER",
        handover.display().to_string(),
    )];
    let root = tempfile::tempdir().unwrap();
    let root = root.path().to_path_buf();
    let (out, _) = init(home.path(), &p, &root, &pairs(&env));
    assert_ok(&out);
    let read = |name: &str| std::fs::read_to_string(root.join(format!("{group}/{name}"))).unwrap();
    let (user, password) = (read("username"), read("password"));

    // The handover: one file, 0400, with the token and the lease the files came from.
    let file = handover.join("vault.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o400);
    let handed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let token = handed["token"].as_str().unwrap().to_string();
    assert!(!token.is_empty());
    let lease_id = handed["leases"][0]["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(read(".lease").contains(&lease_id), "{handed}");
    assert_eq!(std::fs::read_dir(&handover).unwrap().count(), 1);

    let mut watch_env = env.to_vec();
    watch_env.push(("FLYTE_SECRET_REVOKE_ON_EXIT", "true".into()));
    let watch = Watch::every("1h", home.path(), &p, &root, &watch_env);
    let started = Instant::now();
    let (s2, u2, p2) = (s.clone(), user.clone(), password.clone());
    let log_path = home.path().join("watch.log");
    let renewed = tokio::task::spawn_blocking(move || {
        wait_for("a renewal", Duration::from_secs(10), || {
            std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .contains("renewed a database lease")
        });
        // Past the first 5 s TTL: the same user, still valid.
        std::thread::sleep(Duration::from_secs(7).saturating_sub(started.elapsed()));
        psql_login(&s2, &u2, &p2)
    })
    .await
    .unwrap();
    if let Err(e) = renewed {
        panic!("the renewed user cannot log in: {e}\n{}", watch.log());
    }
    assert_eq!(
        read("username"),
        user,
        "new credentials instead of a renewal"
    );
    assert_eq!(version(&root), Some(1));

    let log = watch.terminate();
    assert!(log.contains("revoked the Vault token"), "{log}");
    let refused = psql_login(&s, &user, &password);
    assert!(refused.is_err(), "the user survived the revocation");
    assert!(!log.contains(&token), "the token is in the log");
    assert!(!log.contains(&password));
    let init_log = printed(&out);
    assert!(!init_log.contains(&token), "the token is in init's output");
}
