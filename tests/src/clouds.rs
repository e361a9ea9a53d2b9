//! The GCP and Azure stand-ins (`testkit::{gcp, azure}`) as the end-to-end suites and the demo
//! use them: started on a runtime of their own (the pod runner blocks the caller's thread while
//! the agent talks to them), their CA files and the Azure federated token written into a
//! directory the agent container gets mounted at [`CLOUD_DIR`] after admission (as the Azure
//! Workload Identity webhook adds its token volume after ours), the backends' config entries,
//! and the cluster's own credentials in the agent's env (GKE Workload Identity's metadata
//! server, Azure Workload Identity's token file).

use std::path::Path;

use flyte_secret_testkit::azure::{AzureStandIn, CLIENT_ID, TENANT};
use flyte_secret_testkit::gcp::{GcpStandIn, PROJECT};
use serde_json::{Value, json};

/// Where the agent container sees the stand-ins' CA files and the federated token.
pub const CLOUD_DIR: &str = "/var/run/fsa-cloud";
/// The volume that mounts them.
const CLOUD_VOLUME: &str = "fsa-cloud-credentials";
/// The agent init container's name.
const AGENT_CONTAINER: &str = "flyte-secret-agent";

/// The two stand-ins and the runtime serving them.
pub struct Clouds {
    /// Secret Manager, OAuth/STS/IAM and the metadata server.
    pub gcp: GcpStandIn,
    /// Key Vault, Entra ID and IMDS.
    pub azure: AzureStandIn,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Clouds {
    /// Starts both on free ports of 127.0.0.1, on a runtime of their own.
    pub fn start() -> anyhow::Result<Self> {
        std::thread::spawn(|| -> anyhow::Result<Self> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let (gcp, azure) = runtime.block_on(async {
                anyhow::Ok((GcpStandIn::start().await?, AzureStandIn::start().await?))
            })?;
            Ok(Self {
                gcp,
                azure,
                runtime: Some(runtime),
            })
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the stand-ins' thread panicked"))?
    }

    /// Writes the CA files and the federated token into `dir`, world-readable (the agent runs
    /// as a user of its own).
    pub fn write_credentials(&self, dir: &Path) -> std::io::Result<()> {
        self.gcp.ca_file(dir);
        self.azure.ca_file(dir);
        self.azure.federated_token_file(dir);
        for entry in std::fs::read_dir(dir)?.flatten() {
            set_mode(&entry.path(), 0o644)?;
        }
        set_mode(dir, 0o755)
    }

    /// The plan's backend entry for `store` (`gcp` or `azure`), trusting the stand-in's CA as
    /// mounted at [`CLOUD_DIR`].
    pub fn backend(&self, store: &str) -> Value {
        match store {
            "gcp" => json!({"type": "gcp", "project": PROJECT, "endpoint": self.gcp.api.url,
                "caCertFile": format!("{CLOUD_DIR}/gcp-ca.pem")}),
            "azure" => json!({"type": "azure", "vaultUrl": self.azure.url(),
                "caCertFile": format!("{CLOUD_DIR}/azure-ca.pem")}),
            other => panic!("no cloud store {other}"),
        }
    }

    /// The cluster's own credentials, as a GKE / AKS pod has them, with the federated token
    /// at `token_file`.
    pub fn env(&self, token_file: &str) -> Vec<(String, String)> {
        [
            ("GCE_METADATA_HOST", self.gcp.metadata_host()),
            ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
            ("AZURE_TENANT_ID", TENANT.to_string()),
            ("AZURE_FEDERATED_TOKEN_FILE", token_file.to_string()),
            ("AZURE_AUTHORITY_HOST", format!("{}/", self.azure.url())),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .to_vec()
    }

    /// `webhook serve` flags putting [`Clouds::env`] (token under [`CLOUD_DIR`]) into the
    /// agent's env.
    pub fn agent_env_args(&self) -> Vec<String> {
        self.env(&format!("{CLOUD_DIR}/azure-identity-token"))
            .into_iter()
            .flat_map(|(k, v)| ["--agent-env".to_string(), format!("{k}={v}")])
            .collect()
    }
}

impl Drop for Clouds {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
}

/// Mounts `dir` (see [`Clouds::write_credentials`]) read-only at [`CLOUD_DIR`] into the
/// admitted pod's agent init container.
pub fn mount_credentials(pod: &mut Value, dir: &Path) {
    pod["spec"]["volumes"]
        .as_array_mut()
        .expect("the admitted pod has volumes")
        .push(json!({
            "name": CLOUD_VOLUME,
            "hostPath": {"path": dir.display().to_string(), "type": "Directory"}
        }));
    let agent = pod["spec"]["initContainers"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == AGENT_CONTAINER)
        .and_then(Value::as_object_mut)
        .expect("the agent init container");
    agent
        .entry("volumeMounts")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .expect("volumeMounts is a list")
        .push(json!({"name": CLOUD_VOLUME, "mountPath": CLOUD_DIR, "readOnly": true}));
}
