//! Registration: the MutatingWebhookConfiguration that sends labelled pod creations to the
//! webhook and trusts its CA bundle, created or rewritten on every run.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::api::PostParams;
use kube::{Api, Client};

use flyte_secret_spec::{INJECT_LABEL, INJECT_LABEL_VALUE};

use super::{Error, InitCertsArgs, MANAGED_BY, kube_err};

/// The webhook registration, field by field.
pub fn webhook_config(args: &InitCertsArgs, ca_bundle: &str) -> MutatingWebhookConfiguration {
    let name = args
        .webhook_config_name
        .clone()
        .unwrap_or_else(|| args.service_name.clone());
    let mut config = MutatingWebhookConfiguration::default();
    config.metadata.name = Some(name);
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
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "NotIn".into(),
                values: Some(vec![args.namespace.clone(), "kube-system".into()]),
            }]),
            match_labels: None,
        }),
        object_selector: Some(LabelSelector {
            match_labels: Some([(INJECT_LABEL.into(), INJECT_LABEL_VALUE.into())].into()),
            match_expressions: None,
        }),
        match_conditions: None,
    }]);
    config
}

pub(super) async fn apply_webhook_config(
    client: &Client,
    args: &InitCertsArgs,
    ca_bundle: &str,
) -> Result<&'static str, Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let desired = webhook_config(args, ca_bundle);
    let name = desired.metadata.name.clone().unwrap_or_default();
    let what = format!("MutatingWebhookConfiguration {name}");
    let pp = PostParams::default();
    match api
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading {what}")))?
    {
        Some(mut current) => {
            current.webhooks = desired.webhooks;
            current
                .metadata
                .labels
                .get_or_insert_default()
                .insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
            api.replace(&name, &pp, &current)
                .await
                .map_err(kube_err(format!("updating {what}")))?;
            Ok("updated")
        }
        None => {
            api.create(&pp, &desired)
                .await
                .map_err(kube_err(format!("creating {what}")))?;
            Ok("created")
        }
    }
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
}
