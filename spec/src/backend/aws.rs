//! How a request addresses AWS Secrets Manager: Flyte's SecretId (`group:key`), the region
//! of an ARN, and what a request reads — SecretId, version, and a field of its JSON value
//! ([`aws_ref`]: JSON Pointer keys, and ECS's `…:secret:<name>:<json-key>` form).

use crate::field::Pointer;
use crate::request::SecretRequest;

/// What an AWS request reads: the SecretId sent to Secrets Manager, the version, and the
/// field inside the JSON `SecretString`, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsRef {
    /// The SecretId (a name or an ARN).
    pub secret_id: String,
    /// A staging label; with neither this nor `version_id`, `AWSCURRENT`.
    pub version_stage: Option<String>,
    /// A version id (a UUID).
    pub version_id: Option<String>,
    /// A member of the JSON value to deliver instead of the whole value.
    pub field: Option<Pointer>,
}

/// How a request addresses AWS Secrets Manager. The rule, in order:
///
/// 1. A key that starts with `/` is a JSON Pointer: the SecretId is the group (trailing `:`
///    trimmed) and the pointer selects a field of its JSON value.
/// 2. Otherwise the SecretId is Flyte's `group:key` ([`aws_secret_id`]). When that is a
///    Secrets Manager ARN with more than seven `:`-separated parts, the parts after the
///    seventh (the secret's name) are ECS's `json-key[:version-stage[:version-id]]`: a secret
///    name cannot contain `:`, so the name ends at the seventh part. An empty `json-key` means
///    the whole value.
/// 3. Any other SecretId is the secret's name as it is, with no field (a `:` in a name that
///    is not an ARN is ambiguous: [`aws_ambiguity`] says so).
///
/// `group_version` is a version id (a UUID) or a staging label; it may not be combined with
/// a version in the ARN.
pub fn aws_ref(req: &SecretRequest) -> Result<AwsRef, String> {
    let (stage, id) = match req.group_version.as_str() {
        "" => (None, None),
        v if is_aws_version_id(v) => (None, Some(v.to_string())),
        v => (Some(v.to_string()), None),
    };
    if let Some(pointer) = req.pointer() {
        let pointer =
            pointer.map_err(|e| format!("key {:?} is a JSON Pointer that {e}", req.key))?;
        return Ok(AwsRef {
            secret_id: req.group.trim_end_matches(':').to_string(),
            version_stage: stage,
            version_id: id,
            field: Some(pointer),
        });
    }
    let full = aws_secret_id(req);
    let parts: Vec<&str> = full.split(':').collect();
    if arn_region(&full).is_none() || parts.len() <= 7 {
        return Ok(AwsRef {
            secret_id: full,
            version_stage: stage,
            version_id: id,
            field: None,
        });
    }
    if parts.len() > 10 {
        return Err(format!(
            "AWS SecretId {full:?} has more parts than arn:…:secret:<name>:<json-key>:<version-stage>:<version-id>"
        ));
    }
    let part = |i: usize| {
        parts
            .get(i)
            .filter(|p| !p.is_empty())
            .map(|p| p.to_string())
    };
    let (arn_stage, arn_id) = (part(8), part(9));
    if (arn_stage.is_some() || arn_id.is_some()) && !req.group_version.is_empty() {
        return Err(format!(
            "AWS SecretId {full:?} names a version, and so does group_version {:?}: give one",
            req.group_version
        ));
    }
    let field = match part(7) {
        Some(member) => Some(
            Pointer::member(&member)
                .map_err(|e| format!("the json-key {member:?} of {full:?} {e}"))?,
        ),
        None => None,
    };
    Ok(AwsRef {
        secret_id: parts[..7].join(":"),
        version_stage: arn_stage.or(stage),
        version_id: arn_id.or(id),
        field,
    })
}

/// Why an AWS request could be read two ways, if it could: a `:` inside a SecretId that is
/// not an ARN could separate a name from a field, but only ARNs are split ([`aws_ref`]).
pub fn aws_ambiguity(req: &SecretRequest) -> Option<String> {
    if req.is_groupless() || req.pointer().is_some() {
        return None;
    }
    let id = aws_secret_id(req);
    (arn_region(&id).is_none() && id.matches(':').count() > 1).then(|| {
        format!(
            "secret {}: the AWS SecretId {id:?} is read as a secret's name; if it is meant as <name>:<json-key>, use an ARN group (arn:…:secret) or a key that is a JSON Pointer (/json-key)",
            req.name()
        )
    })
}

/// AWS version ids are UUIDs; anything else in `group_version` is a staging label.
pub fn is_aws_version_id(s: &str) -> bool {
    s.len() >= 32 && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The AWS SecretId Flyte forms: `TrimRight(group, ":") + ":" + TrimLeft(key, ":")`.
pub fn aws_secret_id(req: &SecretRequest) -> String {
    format!(
        "{}:{}",
        req.group.trim_end_matches(':'),
        req.key.trim_start_matches(':')
    )
}

/// The region of an ARN-shaped id (`arn:<partition>:secretsmanager:<region>:…`).
pub fn arn_region(id: &str) -> Option<&str> {
    let mut parts = id.splitn(6, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some("secretsmanager"), Some(region)) if !region.is_empty() => {
            Some(region)
        }
        _ => None,
    }
}
