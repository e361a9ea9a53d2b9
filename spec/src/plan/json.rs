//! Reading and writing a plan as JSON. Reading is bounded ([`MAX_PLAN_BYTES`]) and strict
//! (serde rejects unknown fields), and always ends in [`FetchPlan::validate`]: a plan from the
//! outside is never used unchecked.

use serde::Deserialize;

use super::{FetchPlan, MAX_PLAN_BYTES, PlanError};
use crate::naming::SecretPath;
use crate::request::SecretRequest;

impl FetchPlan {
    /// Parses and validates a plan.
    pub fn from_json(json: &str) -> Result<Self, PlanError> {
        if json.len() > MAX_PLAN_BYTES {
            return Err(PlanError::TooLarge(json.len()));
        }
        let plan: FetchPlan = serde_json::from_str(json).map_err(|e| json_error(json, e))?;
        plan.validate()?;
        Ok(plan)
    }

    /// The plan as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a plan always serializes")
    }
}

/// A JSON error names a line and column. When it is a secret's unsafe request or target path
/// (rejected while parsing), say which secret instead, as [`FetchPlan::validate`] would.
fn json_error(json: &str, e: serde_json::Error) -> PlanError {
    let doc: serde_json::Value = match serde_json::from_str(json) {
        Ok(doc) => doc,
        Err(_) => return PlanError::Json(e.to_string()),
    };
    let secrets = doc.get("secrets").and_then(|s| s.as_array());
    for s in secrets.into_iter().flatten() {
        let Some(req) = s
            .get("request")
            .and_then(|r| SecretRequest::deserialize(r).ok())
        else {
            continue;
        };
        if let Err(invalid) = req.validate() {
            return PlanError::Request(invalid);
        }
        let files = s.get("files").and_then(|f| f.as_array());
        for (i, f) in files.into_iter().flatten().enumerate() {
            if let Some(Err(reason)) = f.as_str().map(SecretPath::new) {
                return PlanError::Json(format!("secret {}: files[{i}] {reason}", req.name()));
            }
        }
    }
    PlanError::Json(e.to_string())
}
