//! `metav1.Status`: the body of every error answer (and of the in-stream ERROR event), built the way
//! the real API server builds them (`k8s.io/apimachinery/pkg/api/errors`), so clients that decode
//! `code`, `reason`, `details` and `Retry-After` see what they would see against a cluster.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A `metav1.Status` object (`kind: Status`, `apiVersion: v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Always `Status`.
    pub kind: String,
    /// Always `v1` (Status is "unversioned" and reported as `v1` whatever the group).
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// ListMeta; `continue` is used only by the stale-continue 410.
    pub metadata: Value,
    /// `Failure` (or `Success` for delete answers).
    pub status: String,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Machine-readable reason (`NotFound`, `Expired`...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// `StatusDetails`: name, group, kind, uid, causes, retryAfterSeconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// The HTTP status code.
    pub code: u16,
}

impl Status {
    /// A `Failure` status with this code, reason and message and no details.
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: json!({}),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            details: None,
            code,
        }
    }

    /// Adds `details`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `details.retryAfterSeconds`, which also becomes the `Retry-After` header.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.details
            .as_ref()
            .and_then(|d| d.get("retryAfterSeconds"))
            .and_then(Value::as_u64)
            .filter(|s| *s > 0)
    }

    /// The status as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Status::failure(400, "BadRequest", message)
    }

    /// 401 Unauthorized, as the authentication filter writes it.
    pub fn unauthorized() -> Self {
        Status::failure(401, "Unauthorized", "Unauthorized")
    }

    /// 404 NotFound for an object: `<plural> "<name>" not found`, details `{name, group, kind}`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let resource = qualified(group, plural);
        let mut details = json!({"name": name, "kind": plural});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Status::failure(404, "NotFound", format!("{resource} \"{name}\" not found")).with_details(details)
    }

    /// 404 NotFound for a path the server does not serve.
    pub fn path_not_found() -> Self {
        Status::failure(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &str, what: &str) -> Self {
        Status::failure(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {what}"),
        )
        .with_details(json!({}))
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let mut details = json!({"name": name, "kind": plural});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Status::failure(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, plural)),
        )
        .with_details(details)
    }

    /// 409 Conflict on a stale `resourceVersion`, with the real server's message.
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        let mut details = json!({"name": name, "kind": plural});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Status::failure(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(group, plural)
            ),
        )
        .with_details(details)
    }

    /// 409 Conflict with the real server's prefix and another reason (a failed precondition).
    pub fn conflict_because(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let mut details = json!({"name": name, "kind": plural});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Status::failure(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, plural)
            ),
        )
        .with_details(details)
    }

    /// 403 Forbidden on an object, for a reason.
    pub fn forbidden(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let mut details = json!({"name": name, "kind": plural});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Status::failure(
            403,
            "Forbidden",
            format!("{} \"{name}\" is forbidden: {why}", qualified(group, plural)),
        )
        .with_details(details)
    }

    /// 403 Forbidden: creating in a namespace that is being terminated.
    pub fn namespace_terminating(group: &str, plural: &str, name: &str, namespace: &str) -> Self {
        let mut details = json!({"name": name, "kind": plural, "causes": [{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {namespace} is being terminated"),
            "field": "metadata.namespace"
        }]});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Status::failure(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                qualified(group, plural)
            ),
        )
        .with_details(details)
    }

    /// 422 Invalid for an object, with one cause per `(field, cause reason, message)`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: &[FieldCause]) -> Self {
        let summary = summarize(causes);
        let mut details = json!({
            "name": name,
            "kind": kind,
            "causes": causes.iter().map(FieldCause::to_value).collect::<Vec<_>>(),
        });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        Status::failure(
            422,
            "Invalid",
            format!("{qualified_kind} \"{name}\" is invalid: {summary}"),
        )
        .with_details(details)
    }

    /// 422 Invalid on `ListOptions.meta.k8s.io` (bad query-parameter combinations).
    pub fn invalid_list_options(causes: &[FieldCause]) -> Self {
        Status::invalid("meta.k8s.io", "ListOptions", "", causes)
    }

    /// 410 Expired (or `Gone`) with a message.
    pub fn expired(message: impl Into<String>, reason_gone: bool) -> Self {
        Status::failure(410, if reason_gone { "Gone" } else { "Expired" }, message)
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Status::failure(415, "UnsupportedMediaType", message)
    }

    /// 504 Timeout with the `ResourceVersionTooLarge` cause and `retryAfterSeconds: 1`.
    pub fn resource_version_too_large(requested: u64, current: u64) -> Self {
        Status::failure(
            504,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
        )
        .with_details(json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1
        }))
    }

    /// 500 InternalError.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Status::failure(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
        .with_details(json!({"causes": [{"message": message.to_string()}]}))
    }

    /// 200 `Success`, what a DELETE of an immediately deleted object answers.
    pub fn success_deleted(group: &str, plural: &str, name: &str, uid: &str) -> Self {
        let mut details = json!({"name": name, "kind": plural, "uid": uid});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Status {
            status: "Success".into(),
            ..Status::failure(200, "", "")
        }
        .with_details(details)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} {})", self.message, self.code, self.reason)
    }
}

/// One `details.causes` entry of a 422 Invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldCause {
    /// The offending field path, e.g. `metadata.name`.
    pub field: String,
    /// `FieldValueForbidden`, `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`.
    pub reason: &'static str,
    /// The message, already prefixed the way the real server prefixes it (`Forbidden: ...`).
    pub message: String,
}

impl FieldCause {
    /// `field: Forbidden: detail`.
    pub fn forbidden(field: &str, detail: &str) -> Self {
        FieldCause {
            field: field.into(),
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
        }
    }

    /// `field: Required value: detail`.
    pub fn required(field: &str, detail: &str) -> Self {
        FieldCause {
            field: field.into(),
            reason: "FieldValueRequired",
            message: format!("Required value: {detail}"),
        }
    }

    /// `field: Invalid value: "value": detail`.
    pub fn invalid(field: &str, value: &str, detail: &str) -> Self {
        FieldCause {
            field: field.into(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: \"{value}\": {detail}"),
        }
    }

    /// `field: Unsupported value: "value": supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: &str, supported: &[&str]) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        FieldCause {
            field: field.into(),
            reason: "FieldValueNotSupported",
            message: format!("Unsupported value: \"{value}\": supported values: {list}"),
        }
    }

    fn to_value(&self) -> Value {
        json!({"reason": self.reason, "message": self.message, "field": self.field})
    }
}

/// `field: message` for one cause, `[a, b]` for several (as `ErrorList.ToAggregate` prints).
fn summarize(causes: &[FieldCause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    match parts.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", parts.join(", ")),
    }
}

/// `plural.group`, or `plural` in the core group.
fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_resource_and_object() {
        let status = Status::not_found("", "configmaps", "x").to_value();
        assert_eq!(
            status,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"configmaps \"x\" not found","reason":"NotFound",
                   "details":{"name":"x","kind":"configmaps"},"code":404})
        );
    }

    #[test]
    fn too_large_carries_retry_after() {
        let status = Status::resource_version_too_large(10, 5);
        assert_eq!(status.retry_after_seconds(), Some(1));
        assert_eq!(
            status.message,
            "Timeout: Too large resource version: 10, current: 5"
        );
    }

    #[test]
    fn invalid_list_options_summarizes_causes() {
        let status = Status::invalid_list_options(&[FieldCause::forbidden(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for list",
        )]);
        assert_eq!(
            status.message,
            "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"
        );
        assert_eq!(status.code, 422);
    }
}
