//! Input generation for the long runs: proptest strategies that mutate the seed corpora
//! byte-wise (libFuzzer's classic mutations plus a per-target dictionary), mutate JSON
//! structurally (any node of a plan or an AdmissionReview, and pod-aware edits: annotations
//! holding encoded hostile requests, labels, securityContext ids, containers, volumes), and
//! generate requests and text-format messages from scratch. Everything shrinks, so a failure
//! is reported with a small input.
//!
//! One module per kind of input: [`dict`] (the dictionaries), [`bytes`] (byte mutations of
//! the seeds), [`request`] (requests and text-format messages), [`json`] (structural edits),
//! [`plan`] (fetch plans), [`pod`] and [`admission`] (pod-aware edits of reviews).

use std::sync::Arc;

use proptest::strategy::BoxedStrategy;

use crate::Target;

pub mod admission;
pub mod bytes;
pub mod dict;
pub mod json;
pub mod plan;
pub mod pod;
pub mod request;

pub use admission::{admission_inputs, apply_pod};
pub use bytes::{ByteOp, MAX_LEN, apply_bytes, mutated_seeds};
pub use dict::PATH_TOKENS;
pub use json::{JsonOp, apply_json, leaf};
pub use plan::{plan_inputs, plan_json};
pub use pod::{AnnotationValue, PodOp};
pub use request::{annotation_inputs, field, paths_inputs, request, text_format};

/// The input strategy of a target over its corpus.
pub fn inputs(target: Target, corpus: Arc<Vec<Vec<u8>>>) -> BoxedStrategy<Vec<u8>> {
    match target {
        Target::Annotation => annotation_inputs(corpus),
        Target::Plan => plan_inputs(corpus),
        Target::Admission => admission_inputs(corpus),
        Target::Paths => paths_inputs(corpus),
    }
}
