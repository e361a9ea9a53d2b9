//! The stored kinds' own rules: Secret (`stringData` folded into `data`, `type` defaulting to
//! `Opaque`, key checks, `immutable`), MutatingWebhookConfiguration (the API server's
//! defaults for each webhook, the main validation, `metadata.generation`), Pod (the service
//! account admission default, `Pending`, status only through `/status`, graceful deletion of
//! scheduled pods) and the four RBAC kinds (`roleRef` required and immutable).

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Pod, PodStatus, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, RoleRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::status::{FieldError, quote};
use super::store::{Kind, Store, Table};

/// The largest total size of a Secret's data.
const MAX_SECRET_BYTES: usize = 1024 * 1024;

const CONFIG_KEY_MESSAGE: &str = "a valid config key must consist of alphanumeric characters, '-', \
'_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
'[-._a-zA-Z0-9]+')";
const IMMUTABLE_MESSAGE: &str = "field is immutable when `immutable` is set";

impl Kind for Secret {
    const NAMESPACED: bool = true;

    fn table(store: &Store) -> &Table<Self> {
        &store.secrets
    }

    fn table_mut(store: &mut Store) -> &mut Table<Self> {
        &mut store.secrets
    }

    fn prepare(&mut self, old: Option<&Self>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        // `stringData` is write-only: merged over `data`, then dropped.
        if let Some(string_data) = self.string_data.take() {
            let data = self.data.get_or_insert_with(BTreeMap::new);
            for (k, v) in string_data {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
        if self.data.as_ref().is_some_and(BTreeMap::is_empty) {
            self.data = None;
        }
        if self.type_.as_deref().unwrap_or("").is_empty() {
            self.type_ = Some("Opaque".into());
        }
        let data = self.data.as_ref();
        for key in data.into_iter().flat_map(BTreeMap::keys) {
            let valid = !key.is_empty()
                && key.len() <= 253
                && key != "."
                && !key.starts_with("..")
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
            if !valid {
                errors.push(FieldError::invalid(
                    format!("data[{key}]"),
                    quote(key),
                    CONFIG_KEY_MESSAGE,
                ));
            }
        }
        let size: usize = data
            .into_iter()
            .flat_map(BTreeMap::values)
            .map(|v| v.0.len())
            .sum();
        if size > MAX_SECRET_BYTES {
            let detail = format!("may not be more than {MAX_SECRET_BYTES} bytes");
            errors.push(FieldError::too_long("data", &detail));
        }
        if let Some(old) = old {
            if self.type_ != old.type_ {
                let ty = quote(self.type_.as_deref().unwrap_or(""));
                errors.push(FieldError::invalid("type", ty, "field is immutable"));
            }
            if old.immutable == Some(true) {
                if self.immutable != Some(true) {
                    errors.push(FieldError::forbidden("immutable", IMMUTABLE_MESSAGE));
                }
                if self.data != old.data {
                    errors.push(FieldError::forbidden("data", IMMUTABLE_MESSAGE));
                }
            }
        }
        errors
    }
}

impl Kind for MutatingWebhookConfiguration {
    const NAMESPACED: bool = false;

    fn table(store: &Store) -> &Table<Self> {
        &store.webhooks
    }

    fn table_mut(store: &mut Store) -> &mut Table<Self> {
        &mut store.webhooks
    }

    fn prepare(&mut self, old: Option<&Self>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut names = HashSet::new();
        for (i, hook) in self.webhooks.iter_mut().flatten().enumerate() {
            let at = |field: &str| format!("webhooks[{i}].{field}");
            // The API server's defaults (SetDefaults_MutatingWebhook).
            hook.failure_policy.get_or_insert_with(|| "Fail".into());
            hook.match_policy.get_or_insert_with(|| "Equivalent".into());
            hook.reinvocation_policy
                .get_or_insert_with(|| "Never".into());
            hook.timeout_seconds.get_or_insert(10);
            hook.namespace_selector
                .get_or_insert_with(LabelSelector::default);
            hook.object_selector
                .get_or_insert_with(LabelSelector::default);
            for rule in hook.rules.iter_mut().flatten() {
                rule.scope.get_or_insert_with(|| "*".into());
            }
            if let Some(service) = hook.client_config.service.as_mut() {
                service.port.get_or_insert(443);
            }

            if hook.name.is_empty() {
                errors.push(FieldError::required(at("name"), ""));
            } else if hook.name.split('.').count() < 3 {
                let detail = "should be a domain with at least three segments separated by dots";
                errors.push(FieldError::invalid(at("name"), quote(&hook.name), detail));
            } else if !names.insert(hook.name.clone()) {
                errors.push(FieldError::duplicate(at("name"), &hook.name));
            }
            match hook.side_effects.as_str() {
                "None" | "NoneOnDryRun" => {}
                "" => errors.push(FieldError::required(
                    at("sideEffects"),
                    "must specify one of None, NoneOnDryRun",
                )),
                other => errors.push(FieldError::not_supported(
                    at("sideEffects"),
                    other,
                    &["None", "NoneOnDryRun"],
                )),
            }
            if hook.admission_review_versions.is_empty() {
                let detail = "must specify one of v1, v1beta1";
                errors.push(FieldError::required(at("admissionReviewVersions"), detail));
            }
            let config = &hook.client_config;
            if config.url.is_some() == config.service.is_some() {
                let detail = "exactly one of url or service is required";
                errors.push(FieldError::required(at("clientConfig"), detail));
            }
        }
        // Generation counts changes to the webhooks, starting at 1.
        self.metadata.generation = Some(match old {
            None => 1,
            Some(old) if old.webhooks != self.webhooks => old.metadata.generation.unwrap_or(0) + 1,
            Some(old) => old.metadata.generation.unwrap_or(1),
        });
        errors
    }
}

impl Kind for Pod {
    const NAMESPACED: bool = true;

    fn table(store: &Store) -> &Table<Self> {
        &store.pods
    }

    fn table_mut(store: &mut Store) -> &mut Table<Self> {
        &mut store.pods
    }

    fn prepare(&mut self, old: Option<&Self>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let spec = self.spec.get_or_insert_with(Default::default);
        if spec.containers.is_empty() {
            errors.push(FieldError::required("spec.containers", ""));
        }
        for (i, container) in spec.containers.iter().enumerate() {
            if container.name.is_empty() {
                errors.push(FieldError::required(
                    format!("spec.containers[{i}].name"),
                    "",
                ));
            }
        }
        match old {
            None => {
                // The ServiceAccount admission plugin's default, which TokenRequest's pod
                // binding checks against.
                if spec
                    .service_account_name
                    .as_deref()
                    .unwrap_or("")
                    .is_empty()
                {
                    spec.service_account_name = Some("default".into());
                }
                let status = self.status.get_or_insert_with(PodStatus::default);
                if status.phase.as_deref().unwrap_or("").is_empty() {
                    status.phase = Some("Pending".into());
                }
            }
            Some(old) => {
                let spec = self.spec.as_ref().map(|s| &s.service_account_name);
                let old_spec = old.spec.as_ref().map(|s| &s.service_account_name);
                if spec != old_spec {
                    let detail = "pod updates may not change fields other than `spec.containers[*].image`, ...";
                    errors.push(FieldError::forbidden("spec", detail));
                }
            }
        }
        errors
    }

    fn keep_subresources(&mut self, old: &Self) {
        // As the pod strategy does: a write to the pod itself never changes its status.
        self.status = old.status.clone();
    }

    fn deletion_grace(&self, requested: Option<i64>) -> Option<i64> {
        // Only a pod bound to a node is deleted gracefully (its kubelet finishes the delete);
        // an unscheduled or finished pod goes at once, as on a real cluster.
        let spec = self.spec.as_ref()?;
        spec.node_name.as_deref().filter(|n| !n.is_empty())?;
        let phase = self.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return None;
        }
        let grace = requested
            .or(spec.termination_grace_period_seconds)
            .unwrap_or(30);
        (grace > 0).then_some(grace)
    }
}

fn role_ref_rules(role_ref: &RoleRef, old: Option<&RoleRef>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if role_ref.name.is_empty() {
        errors.push(FieldError::required("roleRef.name", ""));
    }
    if role_ref.api_group != "rbac.authorization.k8s.io" {
        errors.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &role_ref.api_group,
            &["rbac.authorization.k8s.io"],
        ));
    }
    if let Some(old) = old
        && old != role_ref
    {
        errors.push(FieldError::invalid(
            "roleRef",
            format!("{role_ref:?}"),
            "cannot change roleRef",
        ));
    }
    errors
}

macro_rules! rbac_kind {
    ($kind:ty, $table:ident, $namespaced:expr, |$this:ident, $old:ident| $check:expr) => {
        impl Kind for $kind {
            const NAMESPACED: bool = $namespaced;
            const PATH_SEGMENT_NAMES: bool = true;

            fn table(store: &Store) -> &Table<Self> {
                &store.$table
            }

            fn table_mut(store: &mut Store) -> &mut Table<Self> {
                &mut store.$table
            }

            fn prepare(&mut self, old: Option<&Self>) -> Vec<FieldError> {
                let ($this, $old) = (&*self, old);
                $check
            }
        }
    };
}

rbac_kind!(Role, roles, true, |_r, _o| Vec::new());
rbac_kind!(ClusterRole, cluster_roles, false, |_r, _o| Vec::new());
rbac_kind!(RoleBinding, role_bindings, true, |b, o| {
    let mut errors = role_ref_rules(&b.role_ref, o.map(|o| &o.role_ref));
    if !matches!(b.role_ref.kind.as_str(), "Role" | "ClusterRole") {
        errors.push(FieldError::not_supported(
            "roleRef.kind",
            &b.role_ref.kind,
            &["Role", "ClusterRole"],
        ));
    }
    errors
});
rbac_kind!(ClusterRoleBinding, cluster_role_bindings, false, |b, o| {
    let mut errors = role_ref_rules(&b.role_ref, o.map(|o| &o.role_ref));
    if b.role_ref.kind != "ClusterRole" {
        errors.push(FieldError::not_supported(
            "roleRef.kind",
            &b.role_ref.kind,
            &["ClusterRole"],
        ));
    }
    errors
});
