//! Applying the pod-aware edits to an AdmissionReview, and the input strategy of the
//! `admission` target: corpus reviews edited pod-wise, sometimes mutated byte-wise.

use std::sync::Arc;

use flyte_secret_spec::{annotation, base32};
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::bytes::mutated_seeds;
use super::json::apply_json;
use super::pod::{AnnotationValue, PodOp, pod_op};
use crate::Target;

fn object_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("an object")
}

/// Sets `value` at a JSON pointer under `root`, creating objects (and extending arrays by
/// one) on the way.
fn set_at(root: &mut Value, pointer: &str, value: Value) {
    let mut node = root;
    let tokens: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, t) in tokens.iter().enumerate() {
        let last = i + 1 == tokens.len();
        if let Ok(j) = t.parse::<usize>()
            && let Value::Array(a) = node
        {
            if a.len() <= j {
                a.push(json!({}));
            }
            let j = j.min(a.len() - 1);
            if last {
                a[j] = value;
                return;
            }
            node = &mut a[j];
            continue;
        }
        let m = object_mut(node);
        if last {
            m.insert((*t).to_string(), value);
            return;
        }
        node = m.entry((*t).to_string()).or_insert_with(|| json!({}));
    }
}

/// The `request` object of a review, when there is one.
fn request_mut(review: &mut Value) -> Option<&mut Map<String, Value>> {
    review.as_object_mut()?.get_mut("request")?.as_object_mut()
}

/// Applies one pod edit to an AdmissionReview (edits that do not fit are skipped).
pub fn apply_pod(review: &mut Value, op: &PodOp) {
    if let PodOp::Json(op) = op {
        apply_json(review, op);
        return;
    }
    let Some(request) = request_mut(review) else {
        return;
    };
    match op {
        PodOp::Operation(o) => {
            request.insert("operation".into(), json!(o));
            return;
        }
        PodOp::Namespace(ns) => {
            match ns {
                Some(ns) => request.insert("namespace".into(), json!(ns)),
                None => request.remove("namespace"),
            };
            return;
        }
        _ => {}
    }
    let object = request.entry("object").or_insert_with(|| json!({}));
    match op {
        PodOp::Annotation(i, v) => {
            let value = match v {
                AnnotationValue::Request(r) => annotation::encode(r),
                AnnotationValue::Text(t) => base32::encode(t),
                AnnotationValue::Raw(s) => s.clone(),
                AnnotationValue::Long(n) => "a".repeat(*n),
            };
            set_at(
                object,
                &format!("/metadata/annotations/flyte.secrets~1s{i}"),
                Value::String(value),
            );
        }
        PodOp::DropAnnotation(i) => {
            if let Some(Value::Object(m)) = object.pointer_mut("/metadata/annotations")
                && !m.is_empty()
            {
                let k = m.keys().nth(i.index(m.len())).cloned().unwrap_or_default();
                m.remove(&k);
            }
        }
        PodOp::Label(k, v) => match v {
            Some(v) => set_at(
                object,
                &format!("/metadata/labels/{k}"),
                Value::String(v.clone()),
            ),
            None => {
                if let Some(Value::Object(m)) = object.pointer_mut("/metadata/labels") {
                    m.remove(*k);
                }
            }
        },
        PodOp::Id(p, v) => set_at(object, p, v.clone()),
        PodOp::Container {
            init,
            name,
            mount,
            env,
            run_as,
        } => {
            let mut c = json!({"name": name, "image": "busybox"});
            if let Some((volume, path)) = mount {
                c["volumeMounts"] = json!([{"name": volume, "mountPath": path}]);
            }
            if !env.is_empty() {
                c["env"] = Value::Array(
                    env.iter()
                        .map(|n| json!({"name": n, "value": "user"}))
                        .collect(),
                );
            }
            if let Some(uid) = run_as {
                c["securityContext"] = json!({"runAsUser": uid});
            }
            let list = if *init {
                "initContainers"
            } else {
                "containers"
            };
            let spec = object_mut(
                object_mut(object)
                    .entry("spec")
                    .or_insert_with(|| json!({})),
            );
            match spec.get_mut(list) {
                Some(Value::Array(a)) => a.push(c),
                _ => {
                    spec.insert(list.into(), json!([c]));
                }
            }
        }
        PodOp::Volume(name) => {
            let spec = object_mut(
                object_mut(object)
                    .entry("spec")
                    .or_insert_with(|| json!({})),
            );
            let v = json!({"name": name, "emptyDir": {}});
            match spec.get_mut("volumes") {
                Some(Value::Array(a)) => a.push(v),
                _ => {
                    spec.insert("volumes".into(), json!([v]));
                }
            }
        }
        PodOp::Marker(v) => set_at(
            object,
            "/metadata/annotations/flyte-secret-agent~1injected",
            json!(v),
        ),
        PodOp::Operation(_) | PodOp::Namespace(_) | PodOp::Json(_) => {}
    }
}

/// Inputs for the admission target.
pub fn admission_inputs(corpus: Arc<Vec<Vec<u8>>>) -> BoxedStrategy<Vec<u8>> {
    let parsed: Arc<Vec<Value>> = Arc::new(
        corpus
            .iter()
            .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
            .filter(|v| v.pointer("/request/object").is_some())
            .collect(),
    );
    let n = parsed.len().max(1);
    let edited = (0..n, vec(pod_op(), 1..7)).prop_map(move |(i, ops)| {
        let mut review = parsed.get(i).cloned().unwrap_or(Value::Null);
        for op in &ops {
            apply_pod(&mut review, op);
        }
        serde_json::to_vec(&review).expect("serializes")
    });
    prop_oneof![
        8 => edited,
        1 => mutated_seeds(Target::Admission, corpus),
    ]
    .boxed()
}
