//! Request paths and query strings: percent-decoding, the boolean rule of the real server (absent,
//! `0` and `false` are false, anything else is true), and the API paths of §1.1 and §2.1 of the
//! protocol (core and named groups, namespaced and cluster-scoped, legacy `/watch/` paths).

use std::collections::HashMap;

/// Decoded query parameters (the last value wins).
#[derive(Debug, Default, Clone)]
pub(crate) struct Query {
    params: HashMap<String, String>,
}

impl Query {
    pub(crate) fn parse(raw: &str) -> Self {
        let mut params = HashMap::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.insert(percent_decode(k), percent_decode(v));
        }
        Query { params }
    }

    /// The value of a parameter, if present.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// A present, non-empty value.
    pub(crate) fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// The boolean rule: absent/`0`/`false` (any case) = false, anything else (even empty) = true.
    pub(crate) fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| !(v == "0" || v.eq_ignore_ascii_case("false")))
    }

    /// A tri-state boolean (`None` when absent).
    pub(crate) fn optional_flag(&self, key: &str) -> Option<bool> {
        self.get(key).map(|_| self.flag(key))
    }
}

/// Decodes `%XX` escapes and `+` (form encoding); invalid escapes are kept literally.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiPath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// A legacy `/watch/` path.
    pub watch: bool,
}

/// Parses `/api/v1/...` and `/apis/{g}/{v}/...`. `is_namespaced(group, version, plural)` tells
/// whether `namespaces/{x}/{plural}` is a namespaced collection (vs. the namespace `x`'s
/// subresource). None if the path is not a resource path.
pub(crate) fn parse_api_path(
    path: &str,
    is_namespaced: impl Fn(&str, &str, &str) -> bool,
) -> Option<ApiPath> {
    let segments: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
    let (group, version, rest) = match segments.first().map(String::as_str) {
        Some("api") if segments.len() >= 3 => (String::new(), segments[1].clone(), &segments[2..]),
        Some("apis") if segments.len() >= 4 => (segments[1].clone(), segments[2].clone(), &segments[3..]),
        _ => return None,
    };
    let (watch, rest) = match rest.first().map(String::as_str) {
        Some("watch") if rest.len() >= 2 => (true, &rest[1..]),
        _ => (false, rest),
    };
    if rest.iter().any(String::is_empty) {
        return None;
    }
    let (namespace, rest) =
        if rest.len() >= 3 && rest[0] == "namespaces" && is_namespaced(&group, &version, &rest[2]) {
            (Some(rest[1].clone()), &rest[2..])
        } else {
            (None, rest)
        };
    if rest.is_empty() || rest.len() > 3 {
        return None;
    }
    Some(ApiPath {
        group,
        version,
        namespace,
        plural: rest[0].clone(),
        name: rest.get(1).cloned(),
        subresource: rest.get(2).cloned(),
        watch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_flags() {
        let q = Query::parse("labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&x=false&y=&z=FALSE");
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert!(!q.flag("x"));
        assert!(q.flag("y"));
        assert!(!q.flag("z"));
        assert!(!q.flag("absent"));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn paths() {
        let ns = |_: &str, _: &str, plural: &str| plural == "pods";
        assert_eq!(
            parse_api_path("/api/v1/namespaces/demo/pods/p/status", ns),
            Some(ApiPath {
                group: String::new(),
                version: "v1".into(),
                namespace: Some("demo".into()),
                plural: "pods".into(),
                name: Some("p".into()),
                subresource: Some("status".into()),
                watch: false,
            })
        );
        let legacy = parse_api_path("/apis/apps/v1/watch/namespaces/d/pods", ns);
        assert_eq!(
            legacy.map(|p| (p.watch, p.namespace)),
            Some((true, Some("d".into())))
        );
        let namespace_status = parse_api_path("/api/v1/namespaces/demo/status", ns);
        assert_eq!(
            namespace_status.map(|p| (p.plural, p.name, p.subresource)),
            Some(("namespaces".into(), Some("demo".into()), Some("status".into())))
        );
        assert_eq!(parse_api_path("/api", ns), None);
    }
}
