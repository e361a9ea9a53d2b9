//! The real secret broker (`webhook broker`), started on a free loopback port with a fresh CA
//! and serving certificate, as the ServiceAccount `deploy/` gives it
//! (`flyte-secret-agent/flyte-secret-broker`): its kubeconfig holds a token of that account,
//! so the Kubernetes API stand-in authorizes it by the RBAC `deploy/` renders, nothing else.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use serde_json::Value;

use crate::world::World;

/// The broker's namespace and ServiceAccount, as `deploy/base` installs them.
pub const NAMESPACE: &str = "flyte-secret-agent";
/// See [`NAMESPACE`].
pub const SERVICE_ACCOUNT: &str = "flyte-secret-broker";
/// The in-cluster name its certificate is also for.
pub const SERVICE_NAME: &str = "flyte-secret-broker.flyte-secret-agent.svc";

/// A running broker; killed on drop. Its log lines are kept.
pub struct Broker {
    child: Child,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// The CA bundle that verifies it (what the webhook hands to agents).
    pub ca_file: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: crate::TempDir,
}

impl Broker {
    /// Starts `webhook broker` with `args` after the defaults.
    pub fn start(world: &World, args: &[String]) -> anyhow::Result<Self> {
        let dir = crate::TempDir::new("fsa-broker");
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct names: OpenSSL (the adversarial task's Python) takes a leaf whose issuer
        // equals its subject for self-signed.
        ca.distinguished_name
            .push(DnType::CommonName, "flyte-secret-broker e2e CA");
        let ca_cert = ca.self_signed(&ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![SERVICE_NAME.to_string()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, SERVICE_NAME);
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = params.signed_by(&key, &Issuer::new(ca, &ca_key))?;
        let path = |f: &str| dir.path().join(f);
        std::fs::write(path("tls.crt"), cert.pem())?;
        std::fs::write(path("tls.key"), key.serialize_pem())?;
        std::fs::write(path("ca.crt"), ca_cert.pem())?;
        // Readable by the non-root attacker containers of the adversarial suite: public.
        std::fs::set_permissions(
            path("ca.crt"),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )?;
        world.write_kubeconfig(NAMESPACE, SERVICE_ACCOUNT, &path("kubeconfig"))?;
        let mut child = Command::new(crate::webhook_bin())
            .args(["--log-format", "json", "--log", "debug", "broker"])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(path("tls.crt"))
            .arg("--tls-key")
            .arg(path("tls.key"))
            .arg("--kubeconfig")
            .arg(path("kubeconfig"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the broker")?;
        let stderr = child.stderr.take().context("broker stderr")?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let fields = v.get("fields").unwrap_or(&v);
                    if fields["message"] == "broker listening" {
                        let _ = tx.send(fields["addr"].as_str().unwrap_or_default().to_string());
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr: std::net::SocketAddr = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow::anyhow!("broker did not start: {:?}", logs.lock().unwrap()))?
            .parse()?;
        Ok(Self {
            child,
            url: format!("https://127.0.0.1:{}", addr.port()),
            ca_file: path("ca.crt"),
            logs,
            _dir: dir,
        })
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The audit lines so far (one per answered request).
    pub fn audit(&self) -> Vec<Value> {
        self.logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"].as_str().is_some_and(|t| t.ends_with("audit")))
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
