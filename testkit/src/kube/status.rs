//! `Status` bodies: the error responses (and the delete confirmation) the real API server sends,
//! with its message formats, reasons, codes and `details`, so clients see what a cluster says.

use hyper::StatusCode;
use serde_json::{Map, Value, json};

/// A group and resource, as the API server names them in messages (`secrets`,
/// `mutatingwebhookconfigurations.admissionregistration.k8s.io`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupResource {
    pub group: &'static str,
    pub resource: &'static str,
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// A failed request: an HTTP status and the `Status` object sent as its body.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub code: StatusCode,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

/// Go's `%q` for a string, which JSON string quoting matches for the names used here.
pub(crate) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

impl ApiError {
    fn new(
        code: StatusCode,
        reason: &'static str,
        message: String,
        details: Option<Value>,
    ) -> Self {
        Self {
            code,
            reason,
            message,
            details,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".into(),
            None,
        )
    }

    /// 403 with the authorizer's message, e.g. `secrets "db" is forbidden: User "u" cannot get
    /// resource "secrets" in API group "" in the namespace "ns"`.
    pub fn forbidden(
        gr: GroupResource,
        name: Option<&str>,
        user: &str,
        verb: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> Self {
        let scope = match namespace {
            Some(ns) => format!("in the namespace {}", quote(ns)),
            None => "at the cluster scope".into(),
        };
        let why = format!(
            "User {} cannot {verb} resource {} in API group {} {scope}",
            quote(user),
            quote(resource),
            quote(gr.group)
        );
        let message = match name {
            Some(name) => format!("{gr} {} is forbidden: {why}", quote(name)),
            None => format!("{gr} is forbidden: {why}"),
        };
        Self::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            message,
            Some(details(gr, name)),
        )
    }

    pub fn not_found(gr: GroupResource, name: &str) -> Self {
        let message = format!("{gr} {} not found", quote(name));
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            message,
            Some(details(gr, Some(name))),
        )
    }

    pub fn already_exists(gr: GroupResource, name: &str) -> Self {
        let message = format!("{gr} {} already exists", quote(name));
        let details = Some(details(gr, Some(name)));
        Self::new(StatusCode::CONFLICT, "AlreadyExists", message, details)
    }

    pub fn conflict(gr: GroupResource, name: &str, why: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {gr} {}: {why}",
            quote(name)
        );
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            message,
            Some(details(gr, Some(name))),
        )
    }

    /// 422 for validation errors; `kind` is the object kind (`Secret`), not the resource.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let summary = match all.as_slice() {
            [one] => one.clone(),
            _ => format!("[{}]", all.join(", ")),
        };
        let message = format!("{qualified} {} is invalid: {summary}", quote(name));
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.kind.cause(), "message": e.body(), "field": e.field}))
            .collect();
        let mut details = json!({"name": name, "kind": kind, "causes": causes});
        if !group.is_empty() {
            details["group"] = group.into();
        }
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            message,
            Some(details),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message.into(), None)
    }

    /// A patch that does not apply (a JSON patch `test` that fails, a path that is missing):
    /// the API server's generic 422, no reason.
    pub fn patch_failed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "", message.into(), None)
    }

    pub fn internal(message: &str) -> Self {
        let details = json!({"causes": [{"message": message}]});
        let message = format!("Internal error occurred: {message}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            message,
            Some(details),
        )
    }

    pub fn path_not_found() -> Self {
        let message = "the server could not find the requested resource".into();
        Self::new(StatusCode::NOT_FOUND, "NotFound", message, Some(json!({})))
    }

    pub fn method_not_allowed() -> Self {
        let message = "the server does not allow this method on the requested resource".into();
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            message,
            Some(json!({})),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        let message = format!("Request entity too large: limit is {limit}");
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            message,
            None,
        )
    }

    pub fn unsupported_media_type() -> Self {
        let message = "the body of the request was in an unknown format - accepted media types \
                       include: application/json-patch+json, application/merge-patch+json, \
                       application/apply-patch+yaml"
            .into();
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
            None,
        )
    }

    /// The `Status` message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `Status` object sent as the response body.
    pub fn body(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// The `Status` a successful DELETE answers with.
pub(crate) fn deleted(gr: GroupResource, name: &str, uid: &str) -> Value {
    let mut details = details(gr, Some(name));
    details["uid"] = uid.into();
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

fn details(gr: GroupResource, name: Option<&str>) -> Value {
    let mut details = Map::new();
    if let Some(name) = name {
        details.insert("name".into(), name.into());
    }
    if !gr.group.is_empty() {
        details.insert("group".into(), gr.group.into());
    }
    details.insert("kind".into(), gr.resource.into());
    Value::Object(details)
}

/// The kinds of validation error, as apimachinery's `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldErrorKind {
    Invalid,
    Required,
    Forbidden,
    TooLong,
    NotSupported,
    Duplicate,
}

impl FieldErrorKind {
    fn cause(self) -> &'static str {
        match self {
            Self::Invalid => "FieldValueInvalid",
            Self::Required => "FieldValueRequired",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Duplicate => "FieldValueDuplicate",
        }
    }
}

/// One validation error on one field, printed as apimachinery prints a `field.Error`.
#[derive(Clone, Debug)]
pub(crate) struct FieldError {
    pub field: String,
    pub kind: FieldErrorKind,
    /// The offending value, already quoted (`"x"`) or printed (`10`).
    value: Option<String>,
    detail: String,
}

impl FieldError {
    pub fn invalid(field: impl Into<String>, value: impl Into<String>, detail: &str) -> Self {
        Self::with(field, FieldErrorKind::Invalid, Some(value.into()), detail)
    }

    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        Self::with(field, FieldErrorKind::Required, None, detail)
    }

    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self::with(field, FieldErrorKind::Forbidden, None, detail)
    }

    pub fn too_long(field: impl Into<String>, detail: &str) -> Self {
        Self::with(field, FieldErrorKind::TooLong, None, detail)
    }

    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        let detail = format!("supported values: {}", list.join(", "));
        Self::with(
            field,
            FieldErrorKind::NotSupported,
            Some(quote(value)),
            &detail,
        )
    }

    pub fn duplicate(field: impl Into<String>, value: &str) -> Self {
        Self::with(field, FieldErrorKind::Duplicate, Some(quote(value)), "")
    }

    fn with(
        field: impl Into<String>,
        kind: FieldErrorKind,
        value: Option<String>,
        detail: &str,
    ) -> Self {
        Self {
            field: field.into(),
            kind,
            value,
            detail: detail.to_owned(),
        }
    }

    /// The message without the field path (`Invalid value: "x": ...`), as in `causes`.
    pub fn body(&self) -> String {
        let label = match self.kind {
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Duplicate => "Duplicate value",
        };
        let mut body = label.to_owned();
        if let Some(value) = &self.value {
            body = format!("{body}: {value}");
        }
        if !self.detail.is_empty() {
            body = format!("{body}: {}", self.detail);
        }
        body
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}
