//! The read path of AWS Secrets Manager: unversioned ids and the names of every scope of
//! every Flyte 2 managed secret batched into `BatchGetSecretValue` calls (at most 20 ids each,
//! each id once, per region); the managed scope search then runs over the batch's answers, so
//! a pod's secrets cost ⌈ids/20⌉ calls however many scopes each has. Versioned ids (a
//! `VersionId` or stage, which the batch call cannot name) with `GetSecretValue`.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::types::SecretValueEntry;
use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::backend::{AwsRef, arn_region, aws_ref};

use super::{AwsClient, BATCH_SIZE, Error, NAME, classify_code, sdk_error};
use crate::backends::{Class, Context, Found, Lookup, Miss, search_scopes, select_field};
use crate::value::SecretValue;

impl AwsClient {
    /// Looks up many requests: unversioned ids and managed scopes in batches, versioned ids
    /// one by one.
    pub async fn fetch_many(&self, ctx: &Context, reqs: &[&SecretRequest]) -> Vec<Lookup> {
        let mut out: Vec<Option<Lookup>> = (0..reqs.len()).map(|_| None).collect();
        // Unversioned, grouped ids → the indexes of the requests that want them, per region.
        let mut batches: BTreeMap<Option<String>, BTreeMap<String, Vec<usize>>> = BTreeMap::new();
        let mut singles = Vec::new();
        // Managed requests, searched over the batch's answers once they are in.
        let mut managed = Vec::new();
        // Where each grouped request points (SecretId, version, field): `aws_ref`'s rule.
        let mut refs: Vec<Option<AwsRef>> = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.iter().enumerate() {
            if req.is_groupless() {
                match ctx.managed_scopes(NAME, req) {
                    Ok(scopes) => {
                        // Every scope's name into the default region's batch; no request
                        // index: the search below reads the answers by name.
                        let names = batches.entry(None).or_default();
                        for scope in scopes {
                            names.entry(scope.encode_name(&req.key)).or_default();
                        }
                        managed.push(i);
                    }
                    Err(miss) => out[i] = Some(Err(miss)),
                }
                refs.push(None);
                continue;
            }
            let r = match aws_ref(req) {
                Ok(r) => r,
                Err(message) => {
                    out[i] = Some(Err(Miss::permanent(
                        NAME,
                        format!("secret {}: {message}", req.name()),
                    )));
                    refs.push(None);
                    continue;
                }
            };
            if r.version_stage.is_none() && r.version_id.is_none() {
                let region = arn_region(&r.secret_id).map(str::to_string);
                batches
                    .entry(region)
                    .or_default()
                    .entry(r.secret_id.clone())
                    .or_default()
                    .push(i);
            } else {
                singles.push(i);
            }
            refs.push(Some(r));
        }
        let batch_futures = batches.into_iter().flat_map(|(region, ids)| {
            let ids: Vec<(String, Vec<usize>)> = ids.into_iter().collect();
            ids.chunks(BATCH_SIZE)
                .map(|chunk| (region.clone(), chunk.to_vec()))
                .collect::<Vec<_>>()
        });
        let batch_results =
            futures::future::join_all(batch_futures.map(|(region, chunk)| async move {
                let results = self.batch(ctx, region.as_deref(), &chunk).await;
                ((region, chunk), results)
            }));
        let single_results = futures::future::join_all(singles.iter().map(|&i| {
            let r = refs[i]
                .as_ref()
                .expect("a single is a grouped request with its ref");
            self.single(ctx, r)
        }));
        let (batch_results, single_results) = futures::join!(batch_results, single_results);
        // Managed names live in the default region's batches.
        let mut by_name: BTreeMap<String, Lookup> = BTreeMap::new();
        for ((region, chunk), results) in batch_results {
            for ((id, indexes), result) in chunk.iter().zip(results) {
                for &i in indexes {
                    out[i] = Some(result.clone());
                }
                if region.is_none() {
                    by_name.insert(id.clone(), result);
                }
            }
        }
        for (&i, result) in singles.iter().zip(single_results) {
            out[i] = Some(result);
        }
        for i in managed {
            let req = reqs[i];
            let by_name = &by_name;
            // Its scopes' answers came from the same batch calls: their retries count once
            // for the request, not once per scope the search went through.
            let mut retries = 0;
            let lookup = search_scopes(NAME, ctx, req, |scope| {
                let name = scope.encode_name(&req.key);
                let mut answer = by_name.get(&name).cloned().unwrap_or_else(|| {
                    Err(Miss {
                        backend: NAME,
                        class: Class::Permanent,
                        message: format!("AWS secret {name:?} was not asked"),
                        retries: 0,
                    })
                });
                let of_batch = match &mut answer {
                    Ok(found) => &mut found.retries,
                    Err(miss) => &mut miss.retries,
                };
                retries = retries.max(std::mem::take(of_batch));
                async move { answer }
            })
            .await;
            out[i] = Some(match lookup {
                Ok(found) => Ok(Found { retries, ..found }),
                Err(miss) => Err(Miss { retries, ..miss }),
            });
        }
        out.into_iter()
            .zip(&refs)
            .map(|(lookup, aws)| {
                let lookup = lookup.expect("every request has a result");
                match aws {
                    Some(AwsRef {
                        secret_id,
                        field: Some(field),
                        ..
                    }) => lookup
                        .and_then(|found| select_field(found, field, field.tokens(), secret_id)),
                    _ => lookup,
                }
            })
            .collect()
    }

    /// One `BatchGetSecretValue` for up to 20 ids; one result per id, in order.
    async fn batch(
        &self,
        ctx: &Context,
        region: Option<&str>,
        chunk: &[(String, Vec<usize>)],
    ) -> Vec<Lookup> {
        let client = match self.client(region) {
            Ok(c) => c,
            Err(e) => {
                return chunk
                    .iter()
                    .map(|_| Err(Miss::from_error(NAME, &e, 0)))
                    .collect();
            }
        };
        let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
        let label = ids.join(", ");
        let (result, retries) = ctx
            .call(|| {
                let client = client.clone();
                let ids = ids.clone();
                let label = label.clone();
                async move {
                    client
                        .batch_get_secret_value()
                        .set_secret_id_list(Some(ids))
                        .send()
                        .await
                        .map_err(|e| sdk_error(&label, e))
                }
            })
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                return chunk
                    .iter()
                    .map(|_| Err(Miss::from_error(NAME, &e, retries)))
                    .collect();
            }
        };
        let values = response.secret_values();
        let errors = response.errors();
        ids.iter()
            .map(|id| {
                if let Some(entry) = values.iter().find(|v| entry_matches(v, id)) {
                    return entry_value(entry, retries).ok_or_else(|| Miss {
                        backend: NAME,
                        class: Class::Permanent,
                        message: format!(
                            "AWS secret {id:?} has neither SecretString nor SecretBinary"
                        ),
                        retries,
                    });
                }
                let err = match errors.iter().find(|e| e.secret_id() == Some(id.as_str())) {
                    Some(e) => classify_code(
                        id,
                        e.error_code().unwrap_or("Unknown"),
                        e.message().unwrap_or_default(),
                        None,
                    ),
                    None => Error::Service {
                        id: id.clone(),
                        code: "Missing".into(),
                        message: "BatchGetSecretValue returned neither a value nor an error for it"
                            .into(),
                        transient: false,
                    },
                };
                Err(Miss::from_error(NAME, &err, retries))
            })
            .collect()
    }

    /// `GetSecretValue` for a versioned id.
    async fn single(&self, ctx: &Context, r: &AwsRef) -> Lookup {
        self.get(
            ctx,
            &r.secret_id,
            r.version_stage.as_deref(),
            r.version_id.as_deref(),
        )
        .await
    }

    async fn get(
        &self,
        ctx: &Context,
        id: &str,
        stage: Option<&str>,
        version_id: Option<&str>,
    ) -> Lookup {
        let client = self
            .client(arn_region(id))
            .map_err(|e| Miss::from_error(NAME, &e, 0))?;
        let (result, retries) = ctx
            .call(|| {
                let mut call = client.get_secret_value().secret_id(id);
                call = match (version_id, stage) {
                    (Some(v), _) => call.version_id(v),
                    (None, Some(s)) => call.version_stage(s),
                    (None, None) => call.version_stage("AWSCURRENT"),
                };
                async move { call.send().await.map_err(|e| sdk_error(id, e)) }
            })
            .await;
        let response = result.map_err(|e| Miss::from_error(NAME, &e, retries))?;
        let value = match (response.secret_string(), response.secret_binary()) {
            (Some(s), _) => SecretValue::new(s.as_bytes().to_vec()),
            (None, Some(b)) => SecretValue::new(b.as_ref().to_vec()),
            (None, None) => {
                return Err(Miss {
                    backend: NAME,
                    class: Class::Permanent,
                    message: format!("AWS secret {id:?} has neither SecretString nor SecretBinary"),
                    retries,
                });
            }
        };
        Ok(Found {
            backend: NAME,
            value,
            version: response.version_id().map(str::to_string),
            companions: Vec::new(),
            retries,
        })
    }
}

/// Whether a batch entry answers `id`: by name, full ARN, or partial ARN (the full ARN
/// without its `-xxxxxx` suffix, as Flyte's `group:key` ids usually are).
fn entry_matches(entry: &SecretValueEntry, id: &str) -> bool {
    if entry.name() == Some(id) || entry.arn() == Some(id) {
        return true;
    }
    entry.arn().is_some_and(|arn| {
        arn.len() == id.len() + 7 && arn.starts_with(id) && arn.as_bytes()[id.len()] == b'-'
    })
}

fn entry_value(entry: &SecretValueEntry, retries: u32) -> Option<Found> {
    let value = match (entry.secret_string(), entry.secret_binary()) {
        (Some(s), _) => SecretValue::new(s.as_bytes().to_vec()),
        (None, Some(b)) => SecretValue::new(b.as_ref().to_vec()),
        (None, None) => return None,
    };
    Some(Found {
        backend: NAME,
        value,
        version: entry.version_id().map(str::to_string),
        companions: Vec::new(),
        retries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_and_stages() {
        use flyte_secret_spec::backend::is_aws_version_id;
        assert!(is_aws_version_id("b9f2a5a4-3a45-4b0c-8ab8-0f8d4c1e2f3a"));
        assert!(is_aws_version_id("A1B2C3D4567890ABCDEF1234567890AB"));
        assert!(!is_aws_version_id("AWSPREVIOUS"));
        assert!(!is_aws_version_id("kv2"));
    }

    #[test]
    fn partial_arns_match() {
        let e = SecretValueEntry::builder()
            .arn("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf")
            .name("db")
            .build();
        assert!(entry_matches(&e, "db"));
        assert!(entry_matches(
            &e,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db"
        ));
        assert!(entry_matches(
            &e,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
        ));
        assert!(!entry_matches(
            &e,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:d"
        ));
        assert!(!entry_matches(&e, "other"));
    }
}
