//! Where the local real servers started by `scripts/servers.sh start` listen, and how to reach
//! them: addresses, credentials and paths, read from the env file that script writes
//! (`<workspace>/.local/servers.env`, or the file named by `FSA_SERVERS_ENV`). A second set of
//! servers started with `FSA_PORT_OFFSET=<N>` keeps its state, env file included, in
//! `<workspace>/.local/offset-<N>/`; with `FSA_PORT_OFFSET` set, that set is the one used.
//!
//! A test that needs these servers calls [`Servers::load`], which **panics** with instructions
//! when the env file is missing or a server does not accept a TCP connection: such a test never
//! silently skips.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Environment variable naming the env file to read instead of the default.
pub const SERVERS_ENV_VAR: &str = "FSA_SERVERS_ENV";

/// Environment variable selecting a set of servers by its port offset (`scripts/lib.sh`).
pub const PORT_OFFSET_VAR: &str = "FSA_PORT_OFFSET";

const HOW_TO_START: &str = "start the local test servers from the workspace root with \
     `scripts/deps.sh && scripts/servers.sh start` (`scripts/servers.sh status` shows their state; \
     both with the FSA_PORT_OFFSET the tests run with, if any)";

const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);

/// All the local servers.
#[derive(Debug, Clone)]
pub struct Servers {
    /// The env file these values were read from.
    pub env_file: PathBuf,
    pub vault: Vault,
    pub postgres: Postgres,
    pub aws: Aws,
    pub kube: Kube,
    pub tools: Tools,
    /// Every `NAME=value` of the env file, for passing on to child processes.
    pub vars: BTreeMap<String, String>,
}

/// OpenBao (Vault API), dev mode.
#[derive(Debug, Clone)]
pub struct Vault {
    /// `http://127.0.0.1:18200`
    pub addr: String,
    /// Root token.
    pub token: String,
    /// kv v1 mount (`kv1`).
    pub kv1_mount: String,
    /// kv v2 mount (`secret`).
    pub kv2_mount: String,
    /// Database secrets engine mount (`database`).
    pub db_mount: String,
    /// Dynamic PostgreSQL role (`flyte-db`).
    pub db_role: String,
    /// Kubernetes auth mount (`kubernetes`), backed by the Kubernetes API stand-in.
    pub k8s_auth_mount: String,
    /// JWT auth mount (`jwt`), validating the stand-in's service-account tokens.
    pub jwt_auth_mount: String,
    /// Role name on both auth mounts (`flyte`), granting policy `flyte-read`.
    pub role: String,
}

/// The private PostgreSQL cluster OpenBao's database engine manages.
#[derive(Debug, Clone)]
pub struct Postgres {
    pub host: String,
    pub port: u16,
    /// Superuser.
    pub user: String,
    pub password: String,
    pub database: String,
}

/// moto, standing in for AWS Secrets Manager.
#[derive(Debug, Clone)]
pub struct Aws {
    /// Endpoint URL override (`http://127.0.0.1:15000`).
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The Kubernetes API stand-in (`kube-standin serve`).
#[derive(Debug, Clone)]
pub struct Kube {
    /// `https://127.0.0.1:16443`
    pub url: String,
    /// The stand-in's state directory (CA, tokens, keys).
    pub state_dir: PathBuf,
    /// CA certificate (PEM) that verifies the stand-in's serving certificate.
    pub ca_file: PathBuf,
    /// File holding the cluster-admin bearer token.
    pub admin_token_file: PathBuf,
    /// A kubeconfig pointing at the stand-in.
    pub kubeconfig: PathBuf,
    /// Public key (PEM) that verifies its service-account tokens.
    pub sa_pubkey_file: PathBuf,
    /// `iss` of its service-account tokens.
    pub issuer: String,
    /// The `kube-standin` binary (`kube-standin token ...` mints service-account tokens).
    pub standin_bin: PathBuf,
}

/// Tools installed by `scripts/deps.sh`.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The real `bao` binary.
    pub bao: PathBuf,
    /// The venv's Python (flytekit, moto).
    pub python: PathBuf,
    pub psql: PathBuf,
}

impl Servers {
    /// Reads the env file and checks that every server accepts a TCP connection.
    ///
    /// # Panics
    /// When the env file is missing or incomplete, or a server does not answer, with a message
    /// saying how to start them.
    pub fn load() -> Self {
        match Self::try_load() {
            Ok(servers) => servers,
            Err(error) => panic!("local test servers unavailable: {error}\n=> {HOW_TO_START}"),
        }
    }

    /// [`Servers::load`] without the panic.
    pub fn try_load() -> Result<Self, String> {
        let servers = Self::read(&env_file_path())?;
        servers.check_reachable()?;
        Ok(servers)
    }

    /// Reads an env file without contacting any server.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the env file {}: {e}", path.display()))?;
        let vars = parse_env_file(&text)
            .map_err(|e| format!("cannot parse the env file {}: {e}", path.display()))?;
        let get = |name: &str| -> Result<String, String> {
            vars.get(name).cloned().ok_or_else(|| {
                format!(
                    "the env file {} has no {name} (written by an older scripts/servers.sh?)",
                    path.display()
                )
            })
        };
        let path_of = |name: &str| get(name).map(PathBuf::from);
        let ca_file = path_of("FSA_KUBE_CA_FILE")?;
        let state_dir = match vars.get("FSA_KUBE_STATE_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => ca_file.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        let pg_port = get("FSA_PG_PORT")?;
        Ok(Self {
            env_file: path.to_path_buf(),
            vault: Vault {
                addr: get("FSA_VAULT_ADDR")?,
                token: get("FSA_VAULT_TOKEN")?,
                kv1_mount: get("FSA_VAULT_KV1_MOUNT")?,
                kv2_mount: get("FSA_VAULT_KV2_MOUNT")?,
                db_mount: get("FSA_VAULT_DB_MOUNT")?,
                db_role: get("FSA_VAULT_DB_ROLE")?,
                k8s_auth_mount: get("FSA_VAULT_K8S_AUTH_MOUNT")?,
                jwt_auth_mount: get("FSA_VAULT_JWT_AUTH_MOUNT")?,
                role: get("FSA_VAULT_ROLE")?,
            },
            postgres: Postgres {
                host: get("FSA_PG_HOST")?,
                port: pg_port
                    .parse()
                    .map_err(|_| format!("FSA_PG_PORT is not a port: {pg_port:?}"))?,
                user: get("FSA_PG_USER")?,
                password: get("FSA_PG_PASSWORD")?,
                database: get("FSA_PG_DATABASE")?,
            },
            aws: Aws {
                endpoint: get("FSA_AWS_ENDPOINT")?,
                region: get("FSA_AWS_REGION")?,
                access_key_id: get("FSA_AWS_ACCESS_KEY_ID")?,
                secret_access_key: get("FSA_AWS_SECRET_ACCESS_KEY")?,
            },
            kube: Kube {
                url: get("FSA_KUBE_URL")?,
                state_dir,
                ca_file,
                admin_token_file: path_of("FSA_KUBE_ADMIN_TOKEN_FILE")?,
                kubeconfig: path_of("FSA_KUBE_KUBECONFIG")?,
                sa_pubkey_file: path_of("FSA_KUBE_SA_PUBKEY_FILE")?,
                issuer: get("FSA_KUBE_ISSUER")?,
                standin_bin: path_of("FSA_KUBE_STANDIN_BIN")?,
            },
            tools: Tools {
                bao: path_of("FSA_BAO_BIN")?,
                python: path_of("FSA_PYTHON")?,
                psql: path_of("FSA_PSQL")?,
            },
            vars,
        })
    }

    /// Every server's `(name, url)`, in start order.
    pub fn endpoints(&self) -> Vec<(&'static str, String)> {
        vec![
            ("postgres", self.postgres.url()),
            ("moto", self.aws.endpoint.clone()),
            ("kube-standin", self.kube.url.clone()),
            ("openbao", self.vault.addr.clone()),
        ]
    }

    /// Checks that each server is on a loopback address and accepts a TCP connection.
    pub fn check_reachable(&self) -> Result<(), String> {
        let mut down = Vec::new();
        for (name, url) in self.endpoints() {
            let addr = loopback_addr(&url).map_err(|e| format!("{name}: {e}"))?;
            if let Err(e) = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                down.push(format!("{name} at {addr} ({e})"));
            }
        }
        if down.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "not answering: {} (env file {})",
                down.join(", "),
                self.env_file.display()
            ))
        }
    }
}

impl Postgres {
    /// `postgres://HOST:PORT` (no credentials).
    pub fn url(&self) -> String {
        format!("postgres://{}:{}", self.host, self.port)
    }
}

impl Kube {
    /// The cluster-admin bearer token.
    ///
    /// # Panics
    /// When the token file cannot be read.
    pub fn admin_token(&self) -> String {
        let path = &self.admin_token_file;
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}\n=> {HOW_TO_START}", path.display()))
            .trim()
            .to_owned()
    }

    /// A service-account token minted by `kube-standin token` (RS256, signed with the key
    /// behind [`Kube::sa_pubkey_file`]); `audience` defaults to the stand-in's own default.
    ///
    /// # Panics
    /// When the stand-in binary fails.
    pub fn service_account_token(
        &self,
        namespace: &str,
        service_account: &str,
        audience: Option<&str>,
    ) -> String {
        let mut command = Command::new(&self.standin_bin);
        command
            .arg("token")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args([
                "--namespace",
                namespace,
                "--service-account",
                service_account,
            ]);
        if let Some(audience) = audience {
            command.args(["--audience", audience]);
        }
        let output = command.output().unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}\n=> {HOW_TO_START}",
                self.standin_bin.display()
            )
        });
        assert!(
            output.status.success(),
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("kube-standin token printed non-UTF-8")
            .trim()
            .to_owned()
    }
}

/// The env file: `$FSA_SERVERS_ENV`, else `servers.env` in the state directory of the set
/// selected by `$FSA_PORT_OFFSET` ([`state_dir`]).
pub fn env_file_path() -> PathBuf {
    match std::env::var_os(SERVERS_ENV_VAR) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => state_dir(std::env::var(PORT_OFFSET_VAR).ok().as_deref()).join("servers.env"),
    }
}

/// The port offset of the selected set of servers: `$FSA_PORT_OFFSET`, 0 when unset or not a
/// number (scripts/lib.sh refuses such a value, so no set runs there).
pub fn port_offset() -> u16 {
    std::env::var(PORT_OFFSET_VAR)
        .ok()
        .and_then(|offset| offset.trim().parse().ok())
        .unwrap_or(0)
}

/// The state directory `scripts/servers.sh` uses for a port offset: `<workspace>/.local` for
/// none (or 0), `<workspace>/.local/offset-<N>` otherwise. An offset that is not a number names a
/// directory no set uses, so the error that follows shows the offset that was asked for.
pub fn state_dir(offset: Option<&str>) -> PathBuf {
    let local = workspace_root().join(".local");
    match offset.map(str::trim).filter(|offset| !offset.is_empty()) {
        None => local,
        Some(offset) => match offset.parse::<u32>() {
            Ok(0) => local,
            Ok(n) => local.join(format!("offset-{n}")),
            Err(_) => local.join(format!("offset-{offset}")),
        },
    }
}

/// The Cargo workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Resolves `scheme://host:port/...` to a socket address, refusing anything but loopback: these
/// servers are local by design, and a test must never reach out of the machine.
fn loopback_addr(url: &str) -> Result<SocketAddr, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("not a URL: {url:?}"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        && !authority.ends_with(']');
    let host_port = if has_port {
        authority.to_owned()
    } else {
        let port = match scheme {
            "https" => 443,
            "postgres" | "postgresql" => 5432,
            _ => 80,
        };
        format!("{authority}:{port}")
    };
    let addrs: Vec<SocketAddr> = host_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host_port:?} from {url:?}: {e}"))?
        .collect();
    match addrs.iter().find(|a| a.ip().is_loopback()) {
        Some(addr) if addrs.iter().all(|a| a.ip().is_loopback()) => Ok(*addr),
        _ => Err(format!(
            "{url:?} is not a loopback address ({addrs:?}); the test servers must listen on 127.0.0.1"
        )),
    }
}

/// Parses `export NAME=value` lines (the `export` is optional; blank lines and `#` comments are
/// skipped). Values may use shell single quotes, double quotes without expansions, and
/// backslash escapes, as `scripts/servers.sh` writes them.
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (name, raw) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected NAME=value", index + 1))?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("line {}: bad variable name {name:?}", index + 1));
        }
        let value = unquote(raw).map_err(|e| format!("line {}: {e}", index + 1))?;
        vars.insert(name.to_owned(), value);
    }
    Ok(vars)
}

fn unquote(raw: &str) -> Result<String, String> {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err("unterminated single quote".into()),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\' | '$' | '`')) => value.push(c),
                        Some(c) => {
                            value.push('\\');
                            value.push(c);
                        }
                        None => return Err("unterminated double quote".into()),
                    },
                    Some('$' | '`') => return Err("expansions are not supported".into()),
                    Some(c) => value.push(c),
                    None => return Err("unterminated double quote".into()),
                }
            },
            '\\' => value.push(chars.next().ok_or("trailing backslash")?),
            '$' | '`' => return Err("expansions are not supported".into()),
            c if c.is_whitespace() => return Err("unquoted whitespace in value".into()),
            c => value.push(c),
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_quoting_servers_sh_writes() {
        let vars = parse_env_file(
            "# comment\n\nexport A=http://127.0.0.1:18200\nexport B='it'\\''s a path'\nC=\"x\\\"y\"\n",
        )
        .unwrap();
        assert_eq!(vars["A"], "http://127.0.0.1:18200");
        assert_eq!(vars["B"], "it's a path");
        assert_eq!(vars["C"], "x\"y");
    }

    #[test]
    fn rejects_what_it_cannot_parse_faithfully() {
        assert!(parse_env_file("export A=$HOME\n").is_err());
        assert!(parse_env_file("export A='open\n").is_err());
        assert!(parse_env_file("export A=two words\n").is_err());
        assert!(parse_env_file("not a line\n").is_err());
    }

    #[test]
    fn only_loopback_addresses_are_accepted() {
        assert_eq!(
            loopback_addr("http://127.0.0.1:15000").unwrap(),
            "127.0.0.1:15000".parse().unwrap()
        );
        assert_eq!(
            loopback_addr("https://127.0.0.1:16443/api").unwrap(),
            "127.0.0.1:16443".parse().unwrap()
        );
        assert_eq!(
            loopback_addr("postgres://127.0.0.1").unwrap(),
            "127.0.0.1:5432".parse().unwrap()
        );
        assert!(loopback_addr("http://10.1.2.3:8200").is_err());
        assert!(loopback_addr("http://169.254.169.254").is_err());
        assert!(loopback_addr("127.0.0.1:80").is_err());
    }

    #[test]
    fn each_port_offset_has_its_own_state_dir() {
        let local = workspace_root().join(".local");
        assert_eq!(state_dir(None), local);
        assert_eq!(state_dir(Some("")), local);
        assert_eq!(state_dir(Some("0")), local);
        assert_eq!(state_dir(Some("100")), local.join("offset-100"));
        assert_eq!(state_dir(Some("0100")), local.join("offset-100"));
        assert_eq!(state_dir(Some("x")), local.join("offset-x"));
    }

    #[test]
    fn missing_env_file_is_reported_with_its_path() {
        let error = Servers::read(Path::new("/nonexistent/servers.env")).unwrap_err();
        assert!(error.contains("/nonexistent/servers.env"), "{error}");
    }
}
