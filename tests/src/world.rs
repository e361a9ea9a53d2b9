//! The local real servers (from `scripts/servers.sh`), seen from the end-to-end suites: how
//! to store a secret in each backend, the webhook settings that point the agent at them, and
//! the [`Cluster`](crate::kubelet::Cluster) the pod runner uses (the Kubernetes API stand-in
//! process, whose tokens OpenBao's kubernetes auth accepts).

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::primitives::Blob;
use flyte_secret_testkit::servers::Servers;
use k8s_openapi::ByteString;
use std::future::Future;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::json;

use crate::broker::Broker;
use crate::kubelet::{AGENT_IMAGE, Cluster};

/// Clients for every backend, with admin credentials.
pub struct World {
    /// Addresses and credentials of the servers.
    pub servers: Servers,
    kube: kube::Client,
    aws: aws_sdk_secretsmanager::Client,
    vault: vaultrs::client::VaultClient,
}

impl World {
    /// Connects to the servers (panics with how to start them when they are not up).
    pub async fn connect() -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let servers = Servers::load();
        let kubeconfig = kube::config::Kubeconfig::read_from(&servers.kube.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        let kube = kube::Client::try_from(config)?;
        let aws = aws_admin(&servers);
        let vault = vault_admin(&servers);
        Ok(Self {
            servers,
            kube,
            aws,
            vault,
        })
    }

    /// Creates (or replaces) a Kubernetes Secret.
    pub async fn put_k8s(
        &self,
        namespace: &str,
        name: &str,
        data: &[(&str, &[u8])],
        labels: BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let api: Api<Secret> = Api::namespaced(self.kube.clone(), namespace);
        let _ = api.delete(name, &Default::default()).await;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        api.create(&PostParams::default(), &secret)
            .await
            .context("creating the Secret")?;
        Ok(())
    }

    /// Creates an AWS secret (string when UTF-8, binary otherwise).
    pub async fn put_aws(&self, id: &str, value: &[u8]) -> anyhow::Result<()> {
        let _ = self
            .aws
            .delete_secret()
            .secret_id(id)
            .force_delete_without_recovery(true)
            .send()
            .await;
        let call = self.aws.create_secret().name(id);
        let call = match std::str::from_utf8(value) {
            Ok(s) => call.secret_string(s),
            Err(_) => call.secret_binary(Blob::new(value.to_vec())),
        };
        call.send().await.context("creating the AWS secret")?;
        Ok(())
    }

    /// Writes a KV v1 secret at `<mount>/<path>`.
    pub async fn put_kv1(
        &self,
        mount: &str,
        path: &str,
        data: &HashMap<&str, &str>,
    ) -> anyhow::Result<()> {
        vaultrs::kv1::set(&self.vault, mount, path, data)
            .await
            .context("kv1 write")
    }

    /// Writes a KV v2 secret at `<mount>/data/<path>`.
    pub async fn put_kv2(
        &self,
        mount: &str,
        path: &str,
        data: &HashMap<&str, &str>,
    ) -> anyhow::Result<()> {
        vaultrs::kv2::set(&self.vault, mount, path, data)
            .await
            .map(|_| ())
            .context("kv2 write")
    }

    /// Sets a pod's `status.phase` (as the kubelet reports it), through the status subresource.
    pub fn set_pod_phase(&self, namespace: &str, name: &str, phase: &str) -> anyhow::Result<()> {
        let api: Api<Pod> = Api::namespaced(self.kube.clone(), namespace);
        let name = name.to_string();
        let patch = json!({"status": {"phase": phase}});
        blocking(async move {
            api.patch_status(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .map(drop)
            .context("patching the pod's status")
        })
    }

    /// Writes a kubeconfig for `namespace/service_account` (a one-hour API token from a
    /// TokenRequest), as a pod of that account would be configured in-cluster.
    pub fn write_kubeconfig(
        &self,
        namespace: &str,
        service_account: &str,
        path: &std::path::Path,
    ) -> anyhow::Result<()> {
        let api: Api<ServiceAccount> = Api::namespaced(self.kube.clone(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![self.servers.kube.issuer.clone()],
                expiration_seconds: Some(3600),
                bound_object_ref: None,
            },
            ..Default::default()
        };
        let name = service_account.to_string();
        let token = blocking(async move {
            api.create_token_request(&name, &PostParams::default(), &request)
                .await
                .context("TokenRequest")?
                .status
                .map(|s| s.token)
                .context("TokenRequest answered no token")
        })?;
        let kubeconfig = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "standin", "cluster": {
                "server": self.servers.kube.url,
                "certificate-authority": self.servers.kube.ca_file,
            }}],
            "users": [{"name": service_account, "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "standin", "user": service_account, "namespace": namespace}}],
            "current-context": "sa",
        });
        std::fs::write(path, kubeconfig.to_string())?;
        Ok(())
    }

    /// `webhook serve` flags that point the agent at the local servers: backends in order
    /// Kubernetes (through `broker` for what lies outside the pod's namespace) → AWS → Vault
    /// (kubernetes auth, role `flyte`), the agent image, and the AWS settings the agent's
    /// environment needs here (static credentials, no instance metadata; in EKS, IRSA provides
    /// these).
    pub fn webhook_args(&self, broker: &Broker) -> Vec<String> {
        let s = &self.servers;
        let backends = json!([
            {"type": "kubernetes", "broker": {"url": broker.url}},
            {"type": "aws", "region": s.aws.region, "endpoint": s.aws.endpoint},
            {"type": "vault", "address": s.vault.addr, "auth": {"method": "kubernetes", "role": s.vault.role, "mount": s.vault.k8s_auth_mount}},
        ]);
        let mut args = vec![
            "--backends".to_string(),
            backends.to_string(),
            "--agent-image".into(),
            AGENT_IMAGE.into(),
            "--agent-log-format".into(),
            "json".into(),
            "--broker-ca-file".into(),
            broker.ca_file.display().to_string(),
        ];
        for env in [
            format!("AWS_ACCESS_KEY_ID={}", s.aws.access_key_id),
            format!("AWS_SECRET_ACCESS_KEY={}", s.aws.secret_access_key),
            format!("AWS_REGION={}", s.aws.region),
            "AWS_EC2_METADATA_DISABLED=true".into(),
            "FLYTE_SECRET_LOG=agent=debug".into(),
        ] {
            args.push("--agent-env".into());
            args.push(env);
        }
        args
    }
}

/// A root-token client of the local OpenBao, to seed and inspect what the suites read (never
/// the code under test: the agent runs as its own process).
pub fn vault_admin(servers: &Servers) -> vaultrs::client::VaultClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    vaultrs::client::VaultClient::new(
        vaultrs::client::VaultClientSettingsBuilder::default()
            .address(&servers.vault.addr)
            .token(&servers.vault.token)
            .build()
            .expect("OpenBao client settings"),
    )
    .expect("an OpenBao client")
}

/// A client of the local moto with the servers' static credentials (loopback endpoint, so the
/// SDK never looks for instance metadata), to seed and inspect secrets.
pub fn aws_admin(servers: &Servers) -> aws_sdk_secretsmanager::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new(servers.aws.region.clone()))
            .endpoint_url(&servers.aws.endpoint)
            .credentials_provider(Credentials::new(
                &servers.aws.access_key_id,
                &servers.aws.secret_access_key,
                None,
                None,
                "e2e",
            ))
            .build(),
    )
}

impl Cluster for World {
    fn service_account_token(&self, namespace: &str, service_account: &str) -> String {
        self.servers
            .kube
            .service_account_token(namespace, service_account, None)
    }

    fn ca_pem(&self) -> String {
        std::fs::read_to_string(&self.servers.kube.ca_file).unwrap_or_default()
    }

    fn service_host_port(&self) -> (String, String) {
        let url = self
            .servers
            .kube
            .url
            .trim_start_matches("https://")
            .to_string();
        let (host, port) = url.rsplit_once(':').unwrap_or((&url, "443"));
        (host.to_string(), port.to_string())
    }

    fn secret_key(&self, namespace: &str, name: &str, key: &str) -> Option<Vec<u8>> {
        self.secret_data(namespace, name)?.remove(key)
    }

    fn secret_data(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let api: Api<Secret> = Api::namespaced(self.kube.clone(), namespace);
        let name = name.to_string();
        blocking(async move {
            let secret = api.get_opt(&name).await.ok()??;
            Some(
                secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect(),
            )
        })
    }

    fn create_pod(&self, pod: &serde_json::Value) -> anyhow::Result<String> {
        let namespace = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let pod: Pod = serde_json::from_value(pod.clone()).context("the pod as a Pod")?;
        let api: Api<Pod> = Api::namespaced(self.kube.clone(), &namespace);
        blocking(async move {
            let created = api.create(&PostParams::default(), &pod).await?;
            created.metadata.uid.context("the API gave the pod no uid")
        })
    }

    fn delete_pod(&self, namespace: &str, name: &str) {
        let api: Api<Pod> = Api::namespaced(self.kube.clone(), namespace);
        let name = name.to_string();
        blocking(async move {
            let _ = api.delete(&name, &Default::default()).await;
        });
    }

    fn pod_token(
        &self,
        namespace: &str,
        service_account: &str,
        audience: Option<&str>,
        expiration_seconds: i64,
        (pod_name, pod_uid): (&str, &str),
    ) -> anyhow::Result<String> {
        let api: Api<ServiceAccount> = Api::namespaced(self.kube.clone(), namespace);
        // The kubelet asks for the API's audience when the projection names none.
        let audience = audience.unwrap_or(&self.servers.kube.issuer).to_string();
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![audience],
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(pod_name.into()),
                    uid: Some(pod_uid.into()),
                }),
            },
            ..Default::default()
        };
        let service_account = service_account.to_string();
        blocking(async move {
            let answer = api
                .create_token_request(&service_account, &PostParams::default(), &request)
                .await
                .context("TokenRequest")?;
            answer
                .status
                .map(|s| s.token)
                .context("TokenRequest answered no token")
        })
    }
}

/// Runs `f` to completion on a runtime of its own thread: the pod runner is synchronous (it
/// runs processes) and may be called from inside a test's runtime.
fn blocking<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f)
    })
    .join()
    .expect("the runtime thread")
}
