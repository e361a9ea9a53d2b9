//! Helpers: certificates in a kubelet-style Secret volume, the `webhook serve` process, and a
//! raw HTTP/1.1-over-TLS client (raw so a test can send half a request).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub const SERVER_NAME: &str = "flyte-pod-webhook.flyte.svc";

pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A CA and a serving certificate for [`SERVER_NAME`].
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec![SERVER_NAME.to_string()]).unwrap();
    let cert = params.signed_by(&key, &Issuer::new(ca, &ca_key)).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A directory laid out like a mounted Secret volume: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..<version>`; [`SecretVolume::swap`] replaces `..data` atomically, as the kubelet
/// does.
pub struct SecretVolume {
    pub dir: PathBuf,
    version: u32,
}

impl SecretVolume {
    pub fn new(dir: &Path, pki: &Pki) -> Self {
        let mut v = Self {
            dir: dir.to_owned(),
            version: 0,
        };
        v.swap(pki);
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        v
    }

    pub fn swap(&mut self, pki: &Pki) {
        self.version += 1;
        let versioned = self.dir.join(format!("..v{}", self.version));
        std::fs::create_dir_all(&versioned).unwrap();
        std::fs::write(versioned.join("tls.crt"), &pki.cert_pem).unwrap();
        std::fs::write(versioned.join("tls.key"), &pki.key_pem).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..v{}", self.version), &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("tls.key")
    }
}

/// A running `webhook serve`, killed on drop. Its stderr lines are collected.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

pub fn webhook() -> Command {
    Command::new(env!("CARGO_BIN_EXE_webhook"))
}

impl Server {
    /// Starts `webhook serve` on free ports with JSON logs, plus `extra` args and `envs`.
    pub fn start(cert: &Path, key: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::start_bin(
            std::ffi::OsStr::new(env!("CARGO_BIN_EXE_webhook")),
            cert,
            key,
            extra,
            envs,
        )
    }

    /// [`Server::start`] with another `webhook` binary (a release build, for measurements).
    pub fn start_bin(
        bin: &std::ffi::OsStr,
        cert: &Path,
        key: &Path,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let mut cmd = Command::new(bin);
        cmd.args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .args(extra)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("webhook starts");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let (mut addr, mut admin) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while addr.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                panic!("webhook did not start: {:?}", logs.lock().unwrap());
            };
            let parsed = line["addr"].as_str().and_then(|a| a.parse().ok());
            match line["message"].as_str() {
                Some("admission server listening") => addr = parsed,
                Some("admin listening") => admin = parsed,
                _ => {}
            }
        }
        Self {
            child,
            addr: addr.unwrap(),
            admin: admin.unwrap(),
            logs,
            reader: Some(reader),
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// SIGTERM, wait for the exit, and return every log line.
    pub fn stop(&mut self) -> String {
        self.sigterm();
        let status = self.wait(Duration::from_secs(30));
        assert!(status.success(), "{status:?}");
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.logs()
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (at most `limit`).
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "webhook did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens a TLS connection trusting only `ca_pem`.
pub async fn connect(addr: SocketAddr, ca_pem: &str) -> std::io::Result<TlsStream<TcpStream>> {
    install_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(SERVER_NAME).unwrap(), tcp)
        .await
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

pub fn request_head(method: &str, path: &str, len: usize) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

/// Reads a `Connection: close` response to EOF.
pub async fn read_reply<S: AsyncReadExt + Unpin>(stream: &mut S) -> Reply {
    let mut raw = Vec::new();
    // A TLS close_notify may be missing; whatever was read counts.
    let _ = stream.read_to_end(&mut raw).await;
    let text_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..text_end]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        body: raw[text_end + 4..].to_vec(),
    }
}

/// One HTTPS request on a fresh connection.
pub async fn https(addr: SocketAddr, ca_pem: &str, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut tls = connect(addr, ca_pem).await.expect("TLS connection");
    tls.write_all(request_head(method, path, body.len()).as_bytes())
        .await
        .unwrap();
    // The server may answer from the head alone (a body too large for its limits) and close
    // before reading the body: the reply is still there to read.
    if tls.write_all(body).await.is_ok() {
        let _ = tls.flush().await;
    }
    read_reply(&mut tls).await
}

/// One plain HTTP GET.
pub async fn http_get(addr: SocketAddr, path: &str) -> Reply {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    read_reply(&mut tcp).await
}
