//! Where the material lives: the Kubernetes Secret (`ca.crt` bundle, `ca.key`, `tls.crt`,
//! `tls.key`; an immutable one, as Flyte's init-certs makes, is recreated) and the optional
//! local copies for a server in the same pod (`--write-dir`, written atomically).

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

use super::{Error, InitCertsArgs, MANAGED_BY, Material, kube_err};

pub(super) fn read_material(secret: &Secret) -> Material {
    let get = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .unwrap_or_default()
    };
    Material {
        ca_bundle: get("ca.crt"),
        ca_key: get("ca.key"),
        cert: get("tls.crt"),
        key: get("tls.key"),
    }
}

pub(super) async fn write_secret(
    api: &Api<Secret>,
    existing: Option<Secret>,
    material: &Material,
    args: &InitCertsArgs,
) -> Result<&'static str, Error> {
    let data: BTreeMap<String, ByteString> = [
        ("ca.crt", &material.ca_bundle),
        ("ca.key", &material.ca_key),
        ("tls.crt", &material.cert),
        ("tls.key", &material.key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
    .collect();
    let what = format!("Secret {}/{}", args.namespace, args.secret_name);
    let fresh = || {
        let mut s = Secret::default();
        s.metadata.name = Some(args.secret_name.clone());
        s.metadata.namespace = Some(args.namespace.clone());
        s
    };
    let (mut secret, action) = match existing {
        // An immutable Secret (Flyte's init-certs makes them) cannot be updated.
        Some(old) if old.immutable == Some(true) => {
            api.delete(&args.secret_name, &DeleteParams::default())
                .await
                .map_err(kube_err(format!("deleting immutable {what}")))?;
            (fresh(), "recreated")
        }
        Some(old) => (old, "updated"),
        None => (fresh(), "created"),
    };
    secret
        .metadata
        .labels
        .get_or_insert_default()
        .insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    secret.type_ = Some(secret.type_.unwrap_or_else(|| "Opaque".into()));
    secret.data = Some(data);
    secret.string_data = None;
    let pp = PostParams::default();
    if action == "updated" {
        api.replace(&args.secret_name, &pp, &secret)
            .await
            .map_err(kube_err(format!("updating {what}")))?;
    } else {
        api.create(&pp, &secret)
            .await
            .map_err(kube_err(format!("creating {what}")))?;
    }
    Ok(action)
}

pub(super) fn write_local(dir: &Path, material: &Material) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    for (name, content, mode) in [
        ("ca.crt", &material.ca_bundle, 0o644),
        ("tls.crt", &material.cert, 0o644),
        ("tls.key", &material.key, 0o600),
    ] {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(err(&tmp))?;
        f.write_all(content.as_bytes()).map_err(err(&tmp))?;
        f.sync_all().map_err(err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(err(&path))?;
    }
    Ok(())
}
