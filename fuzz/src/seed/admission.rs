//! Seeds of the `admission` target: AdmissionReviews of the Flyte task pod as propeller creates
//! it (the shared [`flyte_secret_testkit::fixtures`] pod and review), one per vector and all
//! together, and the shapes the webhook must handle (sidecars, security contexts, root, Flyte 2
//! managed secrets, no token, a mount conflict, reinvocation, a hostile annotation, UPDATE,
//! v1beta1, a ConfigMap, no label, a plan too large for an env var).

use flyte_secret_spec::request::{MountRequirement, SecretRequest};
use flyte_secret_spec::{INJECT_LABEL, annotation};
use flyte_secret_testkit::fixtures::{FlytePod, NAMESPACE, Review, flyte_pod, review};
use serde_json::{Value, json};

use super::save;
use crate::Target;

/// Writes the `admission` seeds.
pub(super) fn write(requests: &[SecretRequest]) {
    let valid: Vec<SecretRequest> = requests
        .iter()
        .filter(|r| r.validate().is_ok())
        .cloned()
        .collect();
    let put = |name: &str, review: Value| {
        save(
            Target::Admission,
            &format!("{name}.json"),
            serde_json::to_string_pretty(&review)
                .expect("serializes")
                .as_bytes(),
        );
    };
    let one = || FlytePod::new(&valid[..1]);
    for (i, r) in requests.iter().enumerate() {
        let uid = format!("vector-{i}");
        put(
            &uid,
            review(&uid, "CREATE", &flyte_pod(std::slice::from_ref(r))),
        );
    }
    put("all-vectors", review("all", "CREATE", &flyte_pod(&valid)));
    let sidecars = FlytePod::new(&valid[..2]).sidecars().build();
    put("sidecars", review("sidecars", "CREATE", &sidecars));
    let secured = FlytePod::new(&valid[..2])
        .pod_security_context(json!({
            "runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000]
        }))
        .build();
    put("security-context", review("sc", "CREATE", &secured));
    let root = one().security_context(json!({"runAsUser": 0})).build();
    put("root", review("root", "CREATE", &root));
    let v2 = FlytePod::new(&[SecretRequest::new("", "openai_key")
        .with_mount(MountRequirement::EnvVar)
        .with_env_var("OPENAI_KEY")])
    .label("organization", "acme")
    .build();
    put("flyte2-managed", review("v2", "CREATE", &v2));
    let no_token = one().without_service_account_token().build();
    put("no-token", review("no-token", "CREATE", &no_token));
    let conflict = one()
        .edit(|p| {
            p["spec"]["containers"][0]["volumeMounts"]
                .as_array_mut()
                .expect("mounts")
                .push(json!({"name": "aws-secrets", "mountPath": "/etc/flyte/secrets"}));
        })
        .build();
    put("mount-conflict", review("conflict", "CREATE", &conflict));
    let injected = one()
        .annotation("flyte-secret-agent/injected", "true")
        .container(json!({"name": "added-later", "image": "busybox"}))
        .build();
    put("reinvocation", review("again", "CREATE", &injected));
    let hostile = one()
        .annotation(
            "flyte.secrets/s1",
            annotation::encode(&SecretRequest::new("../../etc", "passwd")),
        )
        .build();
    put("hostile", review("hostile", "CREATE", &hostile));
    put("update", review("update", "UPDATE", &one().build()));
    let beta = Review::new(&one().build())
        .uid("beta")
        .api_version("admission.k8s.io/v1beta1")
        .build();
    put("v1beta1", beta);
    let mut cm = review(
        "cm",
        "CREATE",
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": NAMESPACE}, "data": {"a": "b"}}),
    );
    cm["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    put("configmap", cm);
    let unlabelled = one().without_label(INJECT_LABEL).build();
    put("unlabelled", review("unlabelled", "CREATE", &unlabelled));
    // Found by the bad-input table: a plan over the 128 KiB an env var can hold.
    let filler = "a".repeat(120);
    let many: Vec<SecretRequest> = (0..300)
        .map(|i| SecretRequest::new(format!("g{i}-{filler}"), format!("k-{filler}")))
        .collect();
    put(
        "plan-too-large",
        review("large", "CREATE", &flyte_pod(&many)),
    );
}
