//! Routing and handlers: maps a path and method to a resource and verb, authorizes it (the
//! policy or RBAC), and runs the handler. Authentication happened before (see `server`).

use hyper::{Method, StatusCode};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::policy::Attributes;
use super::rbac;
use super::selector::{FieldSelector, LabelSelector};
use super::state::{Shared, User};
use super::status::{self, ApiError, FieldError, GroupResource};
use super::store::{self, Deleted, Kind, ListQuery, Preconditions, Store};
use super::token::PodRef;

/// One request, as the handlers see it.
pub(crate) struct Call<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Vec<(String, String)>,
    pub user: Option<&'a User>,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

impl Call<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A successful response.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub content_type: &'static str,
}

fn reply(status: StatusCode, body: Value) -> Reply {
    Reply {
        status,
        body,
        content_type: "application/json",
    }
}

const TOKEN_REVIEWS: GroupResource = GroupResource {
    group: "authentication.k8s.io",
    resource: "tokenreviews",
};
const SERVICE_ACCOUNTS: GroupResource = GroupResource {
    group: "",
    resource: "serviceaccounts",
};
const PODS: GroupResource = GroupResource {
    group: "",
    resource: "pods",
};
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

pub(crate) fn dispatch(shared: &Shared, call: &Call<'_>) -> Result<Reply, ApiError> {
    let segments: Vec<&str> = call.path.trim_start_matches('/').split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(ApiError::path_not_found());
    }
    type Webhooks = MutatingWebhookConfiguration;
    if let ["apis", RBAC_GROUP, "v1", rest @ ..] = segments.as_slice() {
        return rbac_resource(shared, call, rest);
    }
    match segments.as_slice() {
        ["version"] => public(call, reply(StatusCode::OK, version())),
        ["openid", "v1", "jwks"] => public(
            call,
            Reply {
                status: StatusCode::OK,
                body: shared.tokens.jwks(),
                content_type: "application/jwk-set+json",
            },
        ),
        [".well-known", "openid-configuration"] => {
            public(call, reply(StatusCode::OK, openid_configuration(shared)))
        }
        ["api", "v1", "secrets"] => resource::<Secret>(shared, call, None, None),
        ["api", "v1", "namespaces", ns, "secrets"] => {
            resource::<Secret>(shared, call, Some(ns), None)
        }
        ["api", "v1", "namespaces", ns, "secrets", name] => {
            resource::<Secret>(shared, call, Some(ns), Some(name))
        }
        ["api", "v1", "pods"] => resource::<Pod>(shared, call, None, None),
        ["api", "v1", "namespaces", ns, "pods"] => resource::<Pod>(shared, call, Some(ns), None),
        ["api", "v1", "namespaces", ns, "pods", name] => {
            resource::<Pod>(shared, call, Some(ns), Some(name))
        }
        ["api", "v1", "namespaces", ns, "pods", name, "status"] => {
            pod_status(shared, call, ns, name)
        }
        [
            "api",
            "v1",
            "namespaces",
            ns,
            "serviceaccounts",
            name,
            "token",
        ] => token_request(shared, call, ns, name),
        ["apis", "authentication.k8s.io", "v1", "tokenreviews"] => token_review(shared, call),
        [
            "apis",
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
        ] => resource::<Webhooks>(shared, call, None, None),
        [
            "apis",
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            name,
        ] => resource::<Webhooks>(shared, call, None, Some(name)),
        _ => Err(ApiError::path_not_found()),
    }
}

/// `/apis/rbac.authorization.k8s.io/v1/...`: the four RBAC kinds.
fn rbac_resource(shared: &Shared, call: &Call<'_>, rest: &[&str]) -> Result<Reply, ApiError> {
    match rest {
        ["roles"] => resource::<Role>(shared, call, None, None),
        ["rolebindings"] => resource::<RoleBinding>(shared, call, None, None),
        ["namespaces", ns, "roles"] => resource::<Role>(shared, call, Some(ns), None),
        ["namespaces", ns, "roles", name] => resource::<Role>(shared, call, Some(ns), Some(name)),
        ["namespaces", ns, "rolebindings"] => resource::<RoleBinding>(shared, call, Some(ns), None),
        ["namespaces", ns, "rolebindings", name] => {
            resource::<RoleBinding>(shared, call, Some(ns), Some(name))
        }
        ["clusterroles"] => resource::<ClusterRole>(shared, call, None, None),
        ["clusterroles", name] => resource::<ClusterRole>(shared, call, None, Some(name)),
        ["clusterrolebindings"] => resource::<ClusterRoleBinding>(shared, call, None, None),
        ["clusterrolebindings", name] => {
            resource::<ClusterRoleBinding>(shared, call, None, Some(name))
        }
        _ => Err(ApiError::path_not_found()),
    }
}

/// Endpoints any caller may GET, with or without a token.
fn public(call: &Call<'_>, answer: Reply) -> Result<Reply, ApiError> {
    if call.method == Method::GET {
        Ok(answer)
    } else {
        Err(ApiError::method_not_allowed())
    }
}

fn authorize(
    shared: &Shared,
    call: &Call<'_>,
    verb: &str,
    (gr, resource): (GroupResource, &str),
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<(), ApiError> {
    let user = call.user.ok_or_else(ApiError::unauthorized)?;
    let attributes = Attributes {
        verb,
        resource,
        namespace,
    };
    let request = rbac::Request {
        user: &user.name,
        groups: &user.groups,
        verb,
        api_group: gr.group,
        resource,
        name,
        namespace,
    };
    // Either authorizer may allow, as a cluster chains its authorizers.
    if user.admin
        || shared.policy().allows(&user.name, &attributes)
        || rbac::allows(&shared.store(), &request)
    {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            gr, name, &user.name, verb, resource, namespace,
        ))
    }
}

/// get/list/create/update/patch/delete on a stored kind.
fn resource<K: Kind>(
    shared: &Shared,
    call: &Call<'_>,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Reply, ApiError> {
    let gr = store::group_resource::<K>();
    let watch = matches!(call.param("watch"), Some("true" | "1"));
    let verb = match (call.method, name) {
        (&Method::GET, Some(_)) => "get",
        (&Method::GET, None) if watch => "watch",
        (&Method::GET, None) => "list",
        (&Method::POST, None) if namespace.is_some() || !K::NAMESPACED => "create",
        (&Method::PUT, Some(_)) => "update",
        (&Method::PATCH, Some(_)) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        _ => return Err(ApiError::method_not_allowed()),
    };
    // A list pinned to one name by `fieldSelector=metadata.name=X` is authorized for that name.
    let selected = FieldSelector::parse(call.param("fieldSelector").unwrap_or(""))
        .ok()
        .and_then(|f| f.name().map(str::to_owned));
    let auth_name = if verb == "list" || verb == "watch" {
        selected.as_deref()
    } else {
        name
    };
    authorize(shared, call, verb, (gr, gr.resource), namespace, auth_name)?;
    if verb == "watch" {
        return Err(ApiError::bad_request(
            "watch is not supported by the kube stand-in",
        ));
    }
    let dry_run = match call.param("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other}"
            )));
        }
    };
    let (ns, name) = (namespace.unwrap_or(""), name.unwrap_or(""));

    let mut guard = shared.store();
    let mut scratch: Store;
    let store: &mut Store = if dry_run {
        scratch = guard.clone();
        &mut scratch
    } else {
        &mut guard
    };
    let object = match verb {
        "get" => store.get::<K>(ns, name)?,
        "list" => return list::<K>(store, call, namespace),
        "create" => {
            let created = store.create(ns, store::decode::<K>(call.body)?)?;
            return Ok(reply(StatusCode::CREATED, store::to_json(&created, false)));
        }
        "update" => store.update(ns, name, store::decode::<K>(call.body)?)?,
        "patch" => {
            let media = call.content_type.split(';').next().unwrap_or("").trim();
            let json_patch = media == "application/json-patch+json";
            // Strategic merge patch equals a merge patch for maps; lists are replaced whole.
            if media != "application/merge-patch+json"
                && media != "application/strategic-merge-patch+json"
                && !json_patch
            {
                return Err(ApiError::unsupported_media_type());
            }
            let patch: Value = serde_json::from_slice(call.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            if json_patch {
                store.json_patch::<K>(ns, name, &patch)?
            } else {
                store.merge_patch::<K>(ns, name, &patch)?
            }
        }
        "delete" => match store.delete::<K>(ns, name, &preconditions(call.body)?)? {
            Deleted::Gone(deleted) => {
                let uid = deleted.metadata().uid.as_deref().unwrap_or("");
                return Ok(reply(StatusCode::OK, status::deleted(gr, name, uid)));
            }
            // A graceful delete answers with the object, now carrying its deletionTimestamp.
            Deleted::Marked(marked) => marked,
        },
        _ => unreachable!("verbs are matched above"),
    };
    Ok(reply(StatusCode::OK, store::to_json(&object, false)))
}

fn list<K: Kind>(
    store: &Store,
    call: &Call<'_>,
    namespace: Option<&str>,
) -> Result<Reply, ApiError> {
    let query = ListQuery {
        labels: LabelSelector::parse(call.param("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?,
        fields: FieldSelector::parse(call.param("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?,
        limit: call
            .param("limit")
            .map(|l| l.parse::<i64>())
            .transpose()
            .map_err(|_| ApiError::bad_request("limit must be an integer"))?
            .and_then(|l| usize::try_from(l).ok().filter(|l| *l > 0)),
        continue_token: call
            .param("continue")
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
    };
    let page = store.list::<K>(namespace, &query)?;
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = page.continue_token {
        metadata["continue"] = token.into();
    }
    if let Some(remaining) = page.remaining {
        metadata["remainingItemCount"] = remaining.into();
    }
    let items: Vec<Value> = page.items.iter().map(|o| store::to_json(o, true)).collect();
    let body = json!({
        "kind": format!("{}List", K::KIND),
        "apiVersion": K::API_VERSION,
        "metadata": metadata,
        "items": items,
    });
    Ok(reply(StatusCode::OK, body))
}

/// `DeleteOptions.preconditions` from a DELETE body, if it has one.
fn preconditions(body: &[u8]) -> Result<Preconditions, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Preconditions::default());
    }
    let options: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
    let field = |name: &str| options["preconditions"][name].as_str().map(str::to_owned);
    Ok(Preconditions {
        uid: field("uid"),
        resource_version: field("resourceVersion"),
        grace_period_seconds: options["gracePeriodSeconds"].as_i64(),
    })
}

/// GET, PUT or PATCH `pods/{name}/status`: only the status changes, whatever the body holds.
fn pod_status(
    shared: &Shared,
    call: &Call<'_>,
    namespace: &str,
    name: &str,
) -> Result<Reply, ApiError> {
    let verb = match *call.method {
        Method::GET => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        _ => return Err(ApiError::method_not_allowed()),
    };
    let resource = (PODS, "pods/status");
    authorize(shared, call, verb, resource, Some(namespace), Some(name))?;
    let mut store = shared.store();
    let old = store.get::<Pod>(namespace, name)?;
    let next = match verb {
        "get" => return Ok(reply(StatusCode::OK, store::to_json(&old, false))),
        "update" => store::decode::<Pod>(call.body)?,
        _ => {
            let media = call.content_type.split(';').next().unwrap_or("").trim();
            let patch: Value = serde_json::from_slice(call.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let mut value = store::to_json(&old, false);
            match media {
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    store::merge(&mut value, &patch);
                }
                "application/json-patch+json" => {
                    let patch: json_patch::Patch = serde_json::from_value(patch)
                        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                    json_patch::patch(&mut value, &patch)
                        .map_err(|e| ApiError::patch_failed(e.to_string()))?;
                }
                _ => return Err(ApiError::unsupported_media_type()),
            }
            let body = serde_json::to_vec(&value).expect("JSON serializes");
            store::decode::<Pod>(&body)?
        }
    };
    let updated = store.update_status(namespace, name, next)?;
    Ok(reply(StatusCode::OK, store::to_json(&updated, false)))
}

/// POST tokenreviews: what OpenBao's kubernetes auth calls to check a client's JWT.
fn token_review(shared: &Shared, call: &Call<'_>) -> Result<Reply, ApiError> {
    if call.method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    authorize(
        shared,
        call,
        "create",
        (TOKEN_REVIEWS, "tokenreviews"),
        None,
        None,
    )?;
    let review: Value = serde_json::from_slice(call.body).map_err(|e| {
        ApiError::bad_request(format!(
            "TokenReview in version \"v1\" cannot be handled as a TokenReview: {e}"
        ))
    })?;
    let spec = &review["spec"];
    let token = spec["token"].as_str().unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let requested: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    let audiences = if requested.is_empty() {
        shared.tokens.api_audiences()
    } else {
        requested
    };
    let status = match shared.authenticate(token, &audiences) {
        Ok(user) => json!({
            "authenticated": true,
            "user": user.info(),
            "audiences": user.audiences,
        }),
        // The real API omits `authenticated: false` (Go's omitempty) and sends an empty user.
        Err(why) => json!({"user": {}, "error": format!("[invalid bearer token, {why}]")}),
    };
    let body = json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    });
    Ok(reply(StatusCode::CREATED, body))
}

/// POST serviceaccounts/{name}/token (TokenRequest). Any service account name is accepted:
/// service accounts are not stored.
fn token_request(
    shared: &Shared,
    call: &Call<'_>,
    namespace: &str,
    name: &str,
) -> Result<Reply, ApiError> {
    if call.method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let resource = (SERVICE_ACCOUNTS, "serviceaccounts/token");
    authorize(
        shared,
        call,
        "create",
        resource,
        Some(namespace),
        Some(name),
    )?;
    let request: Value = serde_json::from_slice(call.body).map_err(|e| {
        ApiError::bad_request(format!(
            "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: {e}"
        ))
    })?;
    let mut audiences: Vec<String> = request["spec"]["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    if audiences.is_empty() {
        audiences = shared.tokens.api_audiences();
    }
    let seconds = request["spec"]["expirationSeconds"]
        .as_i64()
        .unwrap_or(3600);
    let too = if seconds < 600 {
        Some("may not specify a duration less than 10 minutes")
    } else if seconds > 1 << 32 {
        Some("may not specify a duration larger than 2^32 seconds")
    } else {
        None
    };
    if let Some(detail) = too {
        let error = FieldError::invalid("spec.expirationSeconds", seconds.to_string(), detail);
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            &[error],
        ));
    }
    let bound = &request["spec"]["boundObjectRef"];
    let pod = if bound.is_null() {
        None
    } else {
        Some(bound_pod(shared, namespace, name, bound)?)
    };
    let (token, expires) = shared
        .tokens
        .mint(namespace, name, &audiences, seconds, pod.as_ref());
    let expires = Time(jiff::Timestamp::from_second(expires).expect("expiry is in range"));
    let body = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
        "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": bound},
        "status": {"token": token, "expirationTimestamp": expires},
    });
    Ok(reply(StatusCode::CREATED, body))
}

/// The pod a TokenRequest binds to, checked as the API server checks it: the pod exists in the
/// namespace, runs as this service account, and has the uid given (if one is).
fn bound_pod(
    shared: &Shared,
    namespace: &str,
    service_account: &str,
    bound: &Value,
) -> Result<PodRef, ApiError> {
    let kind = bound["kind"].as_str().unwrap_or("");
    let api_version = bound["apiVersion"].as_str().unwrap_or("v1");
    if kind != "Pod" || api_version != "v1" {
        // The real API also binds to Secrets and Nodes; nothing here needs them.
        return Err(ApiError::bad_request(format!(
            "cannot bind token to object of type {api_version}, Kind={kind}"
        )));
    }
    let name = bound["name"].as_str().unwrap_or("");
    let pod = shared.store().get::<Pod>(namespace, name)?;
    let runs_as = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref());
    if runs_as != Some(service_account) {
        return Err(ApiError::bad_request(format!(
            "cannot bind token for serviceaccount {} to pod running with different serviceaccount name.",
            status::quote(service_account)
        )));
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if let Some(wanted) = bound["uid"].as_str().filter(|u| !u.is_empty())
        && wanted != uid
    {
        let why = format!(
            "the UID in the bound object reference ({wanted}) does not match the UID in record. The object might have been deleted and then recreated"
        );
        let pods = GroupResource {
            group: "",
            resource: "Pod",
        };
        return Err(ApiError::conflict(pods, name, &why));
    }
    Ok(PodRef {
        name: name.to_owned(),
        uid,
    })
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0+kube-standin",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// OIDC discovery, as a cluster serving `--service-account-jwks-uri` at its own URL.
fn openid_configuration(shared: &Shared) -> Value {
    json!({
        "issuer": shared.tokens.issuer(),
        "jwks_uri": format!("{}/openid/v1/jwks", shared.url),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    })
}
