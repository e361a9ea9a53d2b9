//! The real `webhook` binary, started on free loopback ports with a fresh CA and serving
//! certificate, and an AdmissionReview client over TLS that applies the returned JSONPatch
//! the way the API server does.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context, bail};
use flyte_secret_testkit::fixtures;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

/// The name the serving certificate is for (the in-cluster service name).
pub const SERVICE_NAME: &str = "flyte-pod-webhook.flyte.svc";

/// A running webhook; killed on drop. Its log lines are kept.
pub struct Webhook {
    child: Child,
    /// Admission address.
    pub addr: SocketAddr,
    ca_pem: String,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile_dir::Dir,
}

mod tempfile_dir {
    //! A directory removed on drop (no dependency on tempfile in the library).
    use std::path::{Path, PathBuf};
    pub struct Dir(pub PathBuf);
    impl Dir {
        pub fn new(prefix: &str) -> std::io::Result<Self> {
            let p = std::env::temp_dir().join(format!(
                "{prefix}-{}-{}",
                std::process::id(),
                super::nanos()
            ));
            std::fs::create_dir_all(&p)?;
            Ok(Self(p))
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// What the API server would do with the webhook's answer.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Whether the pod is admitted.
    pub allowed: bool,
    /// The pod after the patch (the original when denied or unpatched).
    pub pod: Value,
    /// AdmissionReview warnings.
    pub warnings: Vec<String>,
    /// The denial message, if any.
    pub message: String,
    /// The JSONPatch as the webhook sent it (decoded), for inspection.
    pub patch: Value,
}

impl Webhook {
    /// Starts `webhook serve` with `args` (backends, agent image, agent env, …).
    pub fn start(args: &[String]) -> anyhow::Result<Self> {
        let dir = tempfile_dir::Dir::new("fsa-webhook")?;
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key)?;
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec![SERVICE_NAME.to_string()])?
            .signed_by(&key, &Issuer::new(ca, &ca_key))?;
        std::fs::write(dir.path().join("tls.crt"), cert.pem())?;
        std::fs::write(dir.path().join("tls.key"), key.serialize_pem())?;
        let mut child = Command::new(crate::webhook_bin())
            .args(["--log-format", "json", "--log", "debug", "serve"])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the webhook")?;
        let stderr = child.stderr.take().context("webhook stderr")?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // The JSON log line's fields: at its top level, or under `fields` (tracing's
                // default JSON layout).
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let fields = v.get("fields").unwrap_or(&v);
                    if fields["message"] == "admission server listening" {
                        let _ = tx.send(fields["addr"].as_str().unwrap_or_default().to_string());
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow::anyhow!("webhook did not start: {:?}", logs.lock().unwrap()))?
            .parse()?;
        Ok(Self {
            child,
            addr,
            ca_pem: ca_cert.pem(),
            logs,
            _dir: dir,
        })
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Sends `pod` as a CREATE AdmissionReview and applies the answer.
    pub async fn admit(&self, pod: &Value) -> anyhow::Result<Admission> {
        let uid = format!("e2e-{}", nanos());
        let review = fixtures::review(&uid, "CREATE", pod);
        let body = self
            .post("/mutate--v1-pod", serde_json::to_vec(&review)?)
            .await?;
        let answer: Value = serde_json::from_slice(&body).context("AdmissionReview response")?;
        let response = &answer["response"];
        if response["uid"] != uid {
            bail!(
                "response uid {} is not the request's {uid}",
                response["uid"]
            );
        }
        let allowed = response["allowed"].as_bool().unwrap_or(false);
        let warnings = response["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let message = response["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut patched = pod.clone();
        let mut patch = Value::Null;
        if response["patch"].is_string() {
            if response["patchType"] != "JSONPatch" {
                bail!("patchType is {}", response["patchType"]);
            }
            let raw = fixtures::patch_of(&answer);
            patch = serde_json::from_slice(&raw)?;
            // As the API server would; the result must be a Pod.
            (patched, _) = fixtures::apply_json(pod, &raw);
        }
        Ok(Admission {
            allowed,
            pod: patched,
            warnings,
            message,
            patch,
        })
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        let tls = connector
            .connect(ServerName::try_from(SERVICE_NAME)?, tcp)
            .await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        let req = hyper::Request::post(path)
            .header("host", SERVICE_NAME)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes().to_vec();
        if !status.is_success() {
            bail!(
                "webhook answered HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(bytes)
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
