//! Where the material lives:
//!
//! - the **serving Secret** (`--secret-name`), which the serving pods mount: `ca.crt` (the
//!   bundle), `tls.crt`, `tls.key`;
//! - the **CA Secret** (`--ca-secret-name`), which only `init-certs` reads: `ca.crt` (the
//!   bundle) and `ca.key`.
//!
//! Each is created, updated or left alone by what its data should be. An immutable one (Flyte's
//! init-certs makes its Secret immutable) cannot be updated: it is deleted and created again.
//! A serving Secret written by an older release, with `ca.key` in it, is read for its CA once
//! and rewritten without it. The optional local copies (`--write-dir`) are written atomically.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

use super::{Error, MANAGED_BY, Material, api_call};

fn get(secret: Option<&Secret>, key: &str) -> String {
    secret
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .unwrap_or_default()
}

/// The stored material: the CA from the CA Secret, or from the serving Secret when only that
/// has a CA key (the layout before the CA had a Secret of its own).
pub(super) fn read_material(serving: Option<&Secret>, ca: Option<&Secret>) -> Material {
    let ca_source = if get(ca, "ca.key").is_empty() && !get(serving, "ca.key").is_empty() {
        serving
    } else {
        ca
    };
    Material {
        ca_bundle: get(ca_source, "ca.crt"),
        ca_key: get(ca_source, "ca.key"),
        cert: get(serving, "tls.crt"),
        key: get(serving, "tls.key"),
    }
}

/// The data of each Secret: (serving, CA).
pub(super) fn data(material: &Material) -> (SecretData, SecretData) {
    let map = |pairs: &[(&str, &String)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect()
    };
    (
        map(&[
            ("ca.crt", &material.ca_bundle),
            ("tls.crt", &material.cert),
            ("tls.key", &material.key),
        ]),
        map(&[
            ("ca.crt", &material.ca_bundle),
            ("ca.key", &material.ca_key),
        ]),
    )
}

/// The data of a serving Secret: the CA bundle, the certificate and its key.
pub(super) fn serving_data(ca_bundle: &str, cert: &str, key: &str) -> SecretData {
    [("ca.crt", ca_bundle), ("tls.crt", cert), ("tls.key", key)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

pub(super) type SecretData = BTreeMap<String, ByteString>;

/// Makes Secret `name` hold exactly `data`: `unchanged`, `updated`, `created` or, for an
/// immutable one, `recreated` (delete, then create).
pub(super) async fn sync_secret(
    api: &Api<Secret>,
    namespace: &str,
    name: &str,
    existing: Option<Secret>,
    data: SecretData,
) -> Result<&'static str, Error> {
    let what = format!("Secret {namespace}/{name}");
    let fresh = || {
        let mut s = Secret::default();
        s.metadata.name = Some(name.to_string());
        s.metadata.namespace = Some(namespace.to_string());
        s
    };
    let (mut secret, action) = match existing {
        Some(old) if old.data.as_ref() == Some(&data) => return Ok("unchanged"),
        // An immutable Secret (Flyte's init-certs makes them) cannot be updated.
        Some(old) if old.immutable == Some(true) => {
            api_call(
                format!("deleting immutable {what}"),
                api.delete(name, &DeleteParams::default()),
            )
            .await?;
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
        api_call(format!("updating {what}"), api.replace(name, &pp, &secret)).await?;
    } else {
        api_call(format!("creating {what}"), api.create(&pp, &secret)).await?;
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
