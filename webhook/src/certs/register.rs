//! Registration: `deploy/` ships the MutatingWebhookConfiguration; `init-certs` only sets the
//! caBundle of the one webhook it serves in the one configuration named by its flags (`get`
//! and `patch` on that name are all the RBAC it needs; it never creates a configuration, so
//! its token cannot register a webhook of its own).
//!
//! [`webhook_config`] is the configuration the flags describe: `deploy/` must ship exactly
//! that (webhook/tests/blackbox/deploy_manifest.rs), and a live configuration that differs is
//! reported in a warning (only the caBundle is written).

use std::time::Duration;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use flyte_secret_spec::{INJECT_LABEL, INJECT_LABEL_VALUE};

use super::{Error, InitCertsArgs, MANAGED_BY, api_call};

/// How often to look again for a configuration not applied yet.
const WAIT_STEP: Duration = Duration::from_secs(2);

/// The webhook registration the flags describe, field by field (what `deploy/` ships, with the
/// caBundle `init-certs` fills in).
pub fn webhook_config(args: &InitCertsArgs, ca_bundle: &str) -> MutatingWebhookConfiguration {
    let mut config = MutatingWebhookConfiguration::default();
    config.metadata.name = Some(args.webhook_config_name().to_string());
    config.metadata.labels = Some([(MANAGED_BY.0.into(), MANAGED_BY.1.into())].into());
    config.webhooks = Some(vec![MutatingWebhook {
        name: args.webhook_name.clone(),
        admission_review_versions: vec!["v1".into()],
        client_config: WebhookClientConfig {
            ca_bundle: Some(ByteString(ca_bundle.as_bytes().to_vec())),
            service: Some(ServiceReference {
                name: args.service_name.clone(),
                namespace: args.namespace.clone(),
                path: Some(args.path.clone()),
                port: Some(args.service_port),
            }),
            url: None,
        },
        rules: Some(vec![RuleWithOperations {
            operations: Some(vec!["CREATE".into()]),
            api_groups: Some(vec![String::new()]),
            api_versions: Some(vec!["v1".into()]),
            resources: Some(vec!["pods".into()]),
            scope: Some("Namespaced".into()),
        }]),
        failure_policy: Some("Fail".into()),
        match_policy: Some("Equivalent".into()),
        side_effects: "None".into(),
        timeout_seconds: Some(args.timeout_seconds),
        reinvocation_policy: Some("IfNeeded".into()),
        namespace_selector: Some(namespace_selector(args)),
        object_selector: Some(LabelSelector {
            match_labels: Some([(INJECT_LABEL.into(), INJECT_LABEL_VALUE.into())].into()),
            match_expressions: None,
        }),
        match_conditions: None,
    }]);
    config
}

/// The webhook's namespaceSelector: `--namespace-selector` (its labels and expressions) AND
/// never the webhook's own namespace or kube-system (a pod there that the webhook would have to
/// admit could be the webhook itself).
fn namespace_selector(args: &InitCertsArgs) -> LabelSelector {
    let own = LabelSelectorRequirement {
        key: "kubernetes.io/metadata.name".into(),
        operator: "NotIn".into(),
        values: Some(vec![args.namespace.clone(), "kube-system".into()]),
    };
    let given = args.namespace_selector.clone().unwrap_or_default();
    let mut expressions = given.match_expressions.unwrap_or_default();
    expressions.push(own);
    LabelSelector {
        match_expressions: Some(expressions),
        match_labels: given.match_labels.filter(|l| !l.is_empty()),
    }
}

/// `--namespace-selector`: a LabelSelector in JSON, checked as the API server checks one
/// (operators, values only with In/NotIn and then at least one, non-empty keys), so a typo
/// fails init-certs instead of selecting nothing.
pub(super) fn parse_namespace_selector(text: &str) -> Result<LabelSelector, String> {
    let selector: LabelSelector =
        serde_json::from_str(text).map_err(|e| format!("not a LabelSelector in JSON ({e})"))?;
    let mut object: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if let Some(o) = object.as_object_mut() {
        o.remove("matchLabels");
        o.remove("matchExpressions");
        if let Some(k) = o.keys().next() {
            return Err(format!(
                "unknown field {k:?} (matchLabels, matchExpressions)"
            ));
        }
    }
    for (k, v) in selector.match_labels.iter().flatten() {
        if k.is_empty() || v.len() > 63 {
            return Err(format!("invalid matchLabels entry {k:?}: {v:?}"));
        }
    }
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default();
        let ok = !e.key.is_empty()
            && match e.operator.as_str() {
                "In" | "NotIn" => !values.is_empty(),
                "Exists" | "DoesNotExist" => values.is_empty(),
                _ => false,
            };
        if !ok {
            return Err(format!(
                "invalid matchExpressions entry (key {:?}, operator {:?}, {} values): the \
                 operator is In or NotIn with values, or Exists or DoesNotExist without",
                e.key,
                e.operator,
                values.len()
            ));
        }
    }
    Ok(selector)
}

/// Sets the caBundle of our webhook in our configuration: `unchanged` when it already holds
/// `ca_bundle`, else `patched`. Waits up to `--webhook-config-wait-seconds` for a
/// configuration not applied yet.
pub(super) async fn patch_ca_bundle(
    client: &Client,
    args: &InitCertsArgs,
    ca_bundle: &str,
) -> Result<&'static str, Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let name = args.webhook_config_name();
    let what = format!("MutatingWebhookConfiguration {name}");
    let waited_until =
        tokio::time::Instant::now() + Duration::from_secs(args.webhook_config_wait_seconds);
    let live = loop {
        match api_call(format!("reading {what}"), api.get_opt(name)).await? {
            Some(live) => break live,
            None if tokio::time::Instant::now() < waited_until => {
                tracing::info!(config = name, "waiting for the webhook configuration");
                tokio::time::sleep(WAIT_STEP).await;
            }
            None => return Err(Error::NoWebhookConfig(name.to_string())),
        }
    };
    let webhooks = live.webhooks.as_deref().unwrap_or_default();
    let Some(index) = webhooks.iter().position(|w| w.name == args.webhook_name) else {
        return Err(Error::WebhookConfig(format!(
            "{what} has no webhook named {}",
            args.webhook_name
        )));
    };
    let ours = &webhooks[index];
    // The CA is only for our Service: refuse to make another one trust it.
    let service = ours.client_config.service.as_ref();
    if service.is_none_or(|s| s.name != args.service_name || s.namespace != args.namespace) {
        return Err(Error::WebhookConfig(format!(
            "{what}: webhook {} does not call Service {}/{}",
            args.webhook_name, args.namespace, args.service_name
        )));
    }
    let drift = drift(ours, &webhook_config(args, ca_bundle));
    if !drift.is_empty() {
        tracing::warn!(
            config = name,
            fields = drift.join(","),
            "the webhook configuration differs from what the init-certs flags describe; \
             only its caBundle is written (fix deploy/ or the flags)"
        );
    }
    if ours
        .client_config
        .ca_bundle
        .as_ref()
        .map(|b| b.0.as_slice())
        == Some(ca_bundle.as_bytes())
    {
        return Ok("unchanged");
    }
    // `test` first: the patch applies only if the webhook is still at that index.
    let patch = json!([
        {"op": "test", "path": format!("/webhooks/{index}/name"), "value": args.webhook_name},
        {
            "op": "add",
            "path": format!("/webhooks/{index}/clientConfig/caBundle"),
            "value": base64::engine::general_purpose::STANDARD.encode(ca_bundle),
        },
    ]);
    let patch = Patch::Json::<()>(serde_json::from_value(patch).expect("a valid JSON patch"));
    api_call(
        format!("patching the caBundle of {what}"),
        api.patch(name, &PatchParams::default(), &patch),
    )
    .await?;
    Ok("patched")
}

/// Top-level fields of `live` that differ from `desired`, the caBundle aside.
fn drift(live: &MutatingWebhook, desired: &MutatingWebhookConfiguration) -> Vec<String> {
    let strip = |w: &MutatingWebhook| {
        let mut v = serde_json::to_value(w).unwrap_or(Value::Null);
        if let Some(cc) = v.get_mut("clientConfig").and_then(Value::as_object_mut) {
            cc.remove("caBundle");
        }
        v
    };
    let Some(want) = desired.webhooks.as_ref().and_then(|w| w.first()) else {
        return Vec::new();
    };
    let (live, want) = (strip(live), strip(want));
    let keys = live
        .as_object()
        .into_iter()
        .chain(want.as_object())
        .flat_map(|o| o.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>();
    keys.into_iter()
        .filter(|k| live.get(k) != want.get(k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::default_args as args;

    #[test]
    fn registration_fields() {
        let c = webhook_config(&args(), "PEM");
        let w = &c.webhooks.as_ref().unwrap()[0];
        assert_eq!(c.metadata.name.as_deref(), Some("flyte-pod-webhook"));
        assert_eq!(w.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(w.side_effects, "None");
        assert_eq!(w.reinvocation_policy.as_deref(), Some("IfNeeded"));
        let sel = w.namespace_selector.as_ref().unwrap();
        assert_eq!(
            sel.match_expressions.as_ref().unwrap()[0].values,
            Some(vec!["flyte".into(), "kube-system".into()])
        );
    }

    #[test]
    fn a_namespace_selector_is_anded_with_the_exclusion_of_our_own_namespaces() {
        let mut a = args();
        a.namespace_selector = Some(
            parse_namespace_selector(
                r#"{"matchLabels":{"flyte.org/secrets":"agent"},
                    "matchExpressions":[{"key":"flyte.org/version","operator":"In","values":["2"]}]}"#,
            )
            .unwrap(),
        );
        let c = webhook_config(&a, "PEM");
        let sel = serde_json::to_value(c.webhooks.unwrap()[0].namespace_selector.as_ref().unwrap())
            .unwrap();
        assert_eq!(
            sel,
            json!({
                "matchLabels": {"flyte.org/secrets": "agent"},
                "matchExpressions": [
                    {"key": "flyte.org/version", "operator": "In", "values": ["2"]},
                    {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                     "values": ["flyte", "kube-system"]}
                ]
            })
        );
        // Without one: exactly the exclusion (what deploy/ ships).
        let plain = serde_json::to_value(
            webhook_config(&args(), "PEM").webhooks.unwrap()[0]
                .namespace_selector
                .clone(),
        )
        .unwrap();
        assert_eq!(plain.as_object().unwrap().len(), 1, "{plain}");
    }

    #[test]
    fn invalid_namespace_selectors_are_refused() {
        for bad in [
            "matchLabels",
            r#"{"matchLabel":{"a":"b"}}"#,
            r#"{"matchExpressions":[{"key":"a","operator":"in","values":["x"]}]}"#,
            r#"{"matchExpressions":[{"key":"a","operator":"In"}]}"#,
            r#"{"matchExpressions":[{"key":"a","operator":"Exists","values":["x"]}]}"#,
            r#"{"matchExpressions":[{"key":"","operator":"Exists"}]}"#,
        ] {
            assert!(parse_namespace_selector(bad).is_err(), "{bad}");
        }
        assert!(parse_namespace_selector("{}").is_ok());
    }

    #[test]
    fn drift_names_the_fields_that_differ_but_not_the_ca_bundle() {
        let a = args();
        let desired = webhook_config(&a, "PEM");
        let mut live = webhook_config(&a, "other PEM").webhooks.unwrap().remove(0);
        assert!(drift(&live, &desired).is_empty());
        live.timeout_seconds = Some(5);
        live.failure_policy = Some("Ignore".into());
        assert_eq!(drift(&live, &desired), ["failurePolicy", "timeoutSeconds"]);
    }
}
