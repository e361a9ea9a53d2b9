//! Pod-aware edits of an AdmissionReview and their strategies: annotations holding encoded
//! (often hostile) requests, labels, securityContext ids, containers, volumes, the operation,
//! the namespace and the injected marker.

use flyte_secret_spec::request::SecretRequest;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::Value;

use super::json::{JsonOp, json_op, leaf};
use super::request::{field, request, text_format};

/// What an annotation edit puts in a `flyte.secrets/s<N>` value.
#[derive(Debug, Clone)]
pub enum AnnotationValue {
    /// A request, encoded as propeller does.
    Request(SecretRequest),
    /// A text-format message (maybe invalid), encoded.
    Text(Vec<u8>),
    /// Any string.
    Raw(String),
    /// A long run of base32 (the length limit).
    Long(usize),
}

/// A pod-aware edit of an AdmissionReview.
#[derive(Debug, Clone)]
pub enum PodOp {
    /// Set annotation `flyte.secrets/s<N>`.
    Annotation(u8, AnnotationValue),
    /// Remove an annotation by position.
    DropAnnotation(Index),
    /// Set or remove a label.
    Label(&'static str, Option<String>),
    /// Set a securityContext id (pod or first container) to a number or a non-number.
    Id(&'static str, Value),
    /// Add a container or init container.
    Container {
        /// Init container?
        init: bool,
        /// Its name.
        name: String,
        /// A volume mount at this path, if any.
        mount: Option<(&'static str, &'static str)>,
        /// Env var names it already has.
        env: Vec<&'static str>,
        /// Give it a securityContext.
        run_as: Option<i64>,
    },
    /// Add a volume.
    Volume(&'static str),
    /// Set the operation.
    Operation(&'static str),
    /// Set or remove the request namespace.
    Namespace(Option<String>),
    /// Set the marker annotation.
    Marker(&'static str),
    /// A generic edit anywhere.
    Json(JsonOp),
}

fn annotation_value() -> impl Strategy<Value = AnnotationValue> {
    prop_oneof![
        6 => request().prop_map(AnnotationValue::Request),
        2 => text_format().prop_map(AnnotationValue::Text),
        1 => field().prop_map(AnnotationValue::Raw),
        1 => (1usize..300_000).prop_map(AnnotationValue::Long),
    ]
}

pub(super) fn pod_op() -> impl Strategy<Value = PodOp> {
    prop_oneof![
        8 => (0u8..6, annotation_value()).prop_map(|(i, v)| PodOp::Annotation(i, v)),
        1 => any::<Index>().prop_map(PodOp::DropAnnotation),
        2 => (
            select(&["inject-flyte-secrets", "project", "domain", "organization"][..]),
            prop::option::of(prop_oneof![
                Just("true".to_string()),
                "[a-z0-9-]{0,12}",
                field()
            ])
        )
            .prop_map(|(k, v)| PodOp::Label(k, v)),
        2 => (
            select(&[
                "/spec/securityContext/runAsUser",
                "/spec/securityContext/runAsGroup",
                "/spec/securityContext/fsGroup",
                "/spec/containers/0/securityContext/runAsUser",
                "/spec/containers/0/securityContext/runAsGroup",
                "/spec/securityContext/supplementalGroups",
                "/spec/securityContext",
            ][..]),
            leaf()
        )
            .prop_map(|(p, v)| PodOp::Id(p, v)),
        2 => (
            any::<bool>(),
            prop_oneof![
                select(&["flyte-secret-agent", "sidecar", "x"][..]).prop_map(String::from),
                "[a-z0-9-]{1,12}"
            ],
            prop::option::of((
                select(&["flyte-secrets", "data", "kube-api-access-x"][..]),
                select(&[
                    "/etc/flyte/secrets",
                    "/etc/flyte/secrets/",
                    "/var/run/flyte/secrets",
                    "/var/run/secrets/kubernetes.io/serviceaccount",
                    "/data",
                ][..])
            )),
            vec(
                select(&[
                    "FLYTE_SECRETS_DEFAULT_DIR",
                    "FLYTE_SECRETS_ENV_PREFIX",
                    "_FSEC_USER-INFO_USER_SECRET",
                    "OPENAI_KEY",
                    "PATH_VAR",
                    "X",
                ][..]),
                0..4
            ),
            prop::option::of(select(&[0i64, 1000, -5, 4_294_967_296][..])),
        )
            .prop_map(|(init, name, mount, env, run_as)| PodOp::Container {
                init,
                name,
                mount,
                env,
                run_as,
            }),
        1 => select(&["flyte-secrets", "flyte-secret-agent-token", "data"][..]).prop_map(PodOp::Volume),
        1 => select(&["CREATE", "UPDATE", "DELETE", "CONNECT", "create"][..]).prop_map(PodOp::Operation),
        1 => prop::option::of(prop_oneof![
            Just("flytesnacks-development".to_string()),
            "[a-z0-9-]{0,12}"
        ])
        .prop_map(PodOp::Namespace),
        1 => select(&["true", "false", ""][..]).prop_map(PodOp::Marker),
        2 => json_op().prop_map(PodOp::Json),
    ]
}
