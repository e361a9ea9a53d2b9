//! Structural JSON mutations: replace, remove, add or duplicate any node of a document (a
//! plan or an AdmissionReview), found by walking down with random indexes.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Value, json};

use super::request::field;

/// A JSON leaf (or small container) to put somewhere.
pub fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => select(&[
            0i64, -1, 1, 2, 7, 65532, 2_147_483_647, 4_294_967_295, 4_294_967_296, i64::MAX,
            i64::MIN,
        ][..])
        .prop_map(|n| json!(n)),
        1 => Just(json!(1.5)),
        1 => Just(json!(1e300)),
        4 => field().prop_map(Value::String),
        1 => Just(json!({})),
        1 => Just(json!([])),
        1 => Just(json!([{}])),
    ]
}

/// An edit at some node of a JSON document, found by walking down with the indexes.
#[derive(Debug, Clone)]
pub enum JsonOp {
    /// Replace the node.
    Replace(Vec<Index>, Value),
    /// Remove the node from its parent.
    Remove(Vec<Index>),
    /// Add a member (objects) or element (arrays) to the node.
    Add(Vec<Index>, String, Value),
    /// Duplicate an array element in place.
    Duplicate(Vec<Index>),
}

pub(super) fn json_op() -> impl Strategy<Value = JsonOp> {
    let path = vec(any::<Index>(), 0..8);
    let key = prop_oneof![
        2 => select(&[
            "version", "secrets", "files", "env", "request", "backends", "mountPath", "owner",
            "scope", "access", "timeouts", "annotation", "group", "key", "groupVersion",
            "mountRequirement", "envVar", "type", "auth", "spec", "metadata", "containers",
            "initContainers", "volumes", "volumeMounts", "securityContext", "annotations",
            "labels", "object", "operation", "subResource", "kind", "uid", "extra",
        ][..])
        .prop_map(String::from),
        1 => field(),
    ];
    prop_oneof![
        3 => (path.clone(), leaf()).prop_map(|(p, v)| JsonOp::Replace(p, v)),
        2 => path.clone().prop_map(JsonOp::Remove),
        2 => (path.clone(), key, leaf()).prop_map(|(p, k, v)| JsonOp::Add(p, k, v)),
        1 => path.prop_map(JsonOp::Duplicate),
    ]
}

/// Walks from `root` following `path` while the nodes are containers; returns the route
/// taken as JSON-pointer-free steps.
fn walk(root: &Value, path: &[Index]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut node = root;
    for i in path {
        match node {
            Value::Object(m) if !m.is_empty() => {
                let k = m.keys().nth(i.index(m.len())).cloned().unwrap_or_default();
                node = &m[&k];
                steps.push(Step::Key(k));
            }
            Value::Array(a) if !a.is_empty() => {
                let j = i.index(a.len());
                node = &a[j];
                steps.push(Step::At(j));
            }
            _ => break,
        }
    }
    steps
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    At(usize),
}

fn node_mut<'a>(root: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
    let mut node = root;
    for s in steps {
        node = match (s, node) {
            (Step::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (Step::At(j), Value::Array(a)) => a.get_mut(*j)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Applies one JSON edit.
pub fn apply_json(doc: &mut Value, op: &JsonOp) {
    match op {
        JsonOp::Replace(path, v) => {
            let steps = walk(doc, path);
            if let Some(n) = node_mut(doc, &steps) {
                *n = v.clone();
            }
        }
        JsonOp::Remove(path) => {
            let steps = walk(doc, path);
            if let Some((last, parent)) = steps.split_last()
                && let Some(p) = node_mut(doc, parent)
            {
                match (last, p) {
                    (Step::Key(k), Value::Object(m)) => {
                        m.remove(k);
                    }
                    (Step::At(j), Value::Array(a)) => {
                        a.remove(*j);
                    }
                    _ => {}
                }
            }
        }
        JsonOp::Add(path, key, v) => {
            let steps = walk(doc, path);
            match node_mut(doc, &steps) {
                Some(Value::Object(m)) => {
                    m.insert(key.clone(), v.clone());
                }
                Some(Value::Array(a)) => a.push(v.clone()),
                _ => {}
            }
        }
        JsonOp::Duplicate(path) => {
            let steps = walk(doc, path);
            if let Some((Step::At(j), parent)) = steps.split_last()
                && let Some(Value::Array(a)) = node_mut(doc, parent)
            {
                let copy = a[*j].clone();
                a.insert(*j, copy);
            }
        }
    }
}
