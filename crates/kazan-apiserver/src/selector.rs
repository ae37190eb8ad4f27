//! Label and field selectors (`labelSelector=`, `fieldSelector=`), parsed with the real server's
//! grammar and evaluated against stored JSON objects. Lists and watches filter with them; a watch
//! also uses them to turn an object entering or leaving the selected set into ADDED or DELETED.

use serde_json::Value;

/// Why a selector was rejected (answered with 400 BadRequest).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

/// A parsed label selector: every requirement must hold (comma = AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// Parses `app=web,tier in (a,b),!legacy`. An empty string selects everything.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(SelectorError(format!(
                    "unable to parse requirement: found '', expected: identifier in \"{text}\""
                )));
            }
            requirements.push(parse_label_requirement(part)?);
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether the selector has no requirement.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `object`'s `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::DoesNotExist(k) => get(k).is_none(),
            LabelRequirement::GreaterThan(k, n) => {
                get(k).and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x > *n)
            }
            LabelRequirement::LessThan(k, n) => {
                get(k).and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x < *n)
            }
        })
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_label_requirement(part: &str) -> Result<LabelRequirement, SelectorError> {
    let bad = |why: &str| SelectorError(format!("unable to parse requirement: {why} in \"{part}\""));
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        validate_key(key).map_err(|e| bad(&e))?;
        return Ok(LabelRequirement::DoesNotExist(key.to_string()));
    }
    for (op, len) in [("==", 2), ("!=", 2), ("=", 1), (">", 1), ("<", 1)] {
        if let Some(pos) = part.find(op) {
            // `!=` contains `=`: make sure the earlier, longer operator wins.
            if op == "=" && (part.contains("==") || part.contains("!=")) {
                continue;
            }
            let key = part[..pos].trim();
            let value = part[pos + len..].trim();
            validate_key(key).map_err(|e| bad(&e))?;
            return match op {
                ">" | "<" => {
                    let n = value.parse::<i64>().map_err(|_| {
                        bad(&format!(
                            "for 'Gt', 'Lt' operators, the value must be an integer, got \"{value}\""
                        ))
                    })?;
                    Ok(if op == ">" {
                        LabelRequirement::GreaterThan(key.into(), n)
                    } else {
                        LabelRequirement::LessThan(key.into(), n)
                    })
                }
                _ => {
                    validate_value(value).map_err(|e| bad(&e))?;
                    Ok(if op == "!=" {
                        LabelRequirement::NotEquals(key.into(), value.into())
                    } else {
                        LabelRequirement::Equals(key.into(), value.into())
                    })
                }
            };
        }
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default().trim();
    let rest = words.next().unwrap_or_default().trim();
    validate_key(key).map_err(|e| bad(&e))?;
    if rest.is_empty() {
        return Ok(LabelRequirement::Exists(key.to_string()));
    }
    let (notin, set) = if let Some(set) = rest.strip_prefix("notin") {
        (true, set)
    } else if let Some(set) = rest.strip_prefix("in") {
        (false, set)
    } else {
        return Err(bad(
            "found unexpected operator, expected one of: in, notin, =, ==, !=, gt, lt",
        ));
    };
    let set = set.trim();
    let inner = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| bad("expected a set of values in parentheses"))?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    for v in &values {
        validate_value(v).map_err(|e| bad(&e))?;
    }
    Ok(if notin {
        LabelRequirement::NotIn(key.into(), values)
    } else {
        LabelRequirement::In(key.into(), values)
    })
}

/// A label key: optional DNS-subdomain prefix and `/`, then a name of ≤63 characters.
fn validate_key(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty()
                || prefix.len() > 253
                || !prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(format!(
                    "invalid label key \"{key}\": prefix part must be a DNS subdomain"
                ));
            }
            name
        }
        None => key,
    };
    if name.is_empty() || name.len() > 63 || !is_label_chars(name) {
        return Err(format!(
            "invalid label key \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

/// A label value: empty, or ≤63 characters of the label alphabet.
fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 || !is_label_chars(value) {
        return Err(format!(
            "invalid label value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

fn is_label_chars(s: &str) -> bool {
    let ok_edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    ok_edge(s.chars().next())
        && ok_edge(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Which objects a list or watch selects: a namespace (None = all) and the selectors.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// The shard asked for with `shardSelector`, when sharding is on.
    pub shard: Option<kazan::shard::ShardSelector>,
}

impl Filter {
    /// Whether `object` is selected.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && object.pointer("/metadata/namespace").and_then(Value::as_str) != Some(ns.as_str())
        {
            return false;
        }
        self.labels.matches(object)
            && self.fields.matches(object)
            && self.shard.as_ref().is_none_or(|shard| shard.matches_json(object))
    }
}

/// One field requirement: `path=value` or `path!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    field: String,
    value: String,
    negated: bool,
}

/// A parsed field selector (comma = AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses `metadata.name=x,status.phase!=Running`; `supported` is the list of field labels the
    /// kind allows (any other gives `field label not supported: <label>`).
    pub fn parse(text: &str, supported: &[&str]) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_unescaped_commas(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, value, negated) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, false)
            } else {
                return Err(SelectorError(format!(
                    "invalid selector: '{text}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(SelectorError(format!("field label not supported: {field}")));
            }
            requirements.push(FieldRequirement {
                field: field.to_string(),
                value: unescape(value.trim()),
                negated,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether the selector has no requirement.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `object` satisfies every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field_value(object, &r.field);
            (actual == r.value) != r.negated
        })
    }
}

/// The string form of a field (missing = empty string, as the real field sets do).
fn field_value(object: &Value, field: &str) -> String {
    // Events' computed fields (`ToSelectableFields`, pkg/registry/core/event/strategy.go); only
    // Events accept these labels.
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match field {
        "source" => {
            let component = text("/source/component");
            return if component.is_empty() {
                text("/reportingController")
            } else {
                component
            };
        }
        "reportingComponent" => return text("/reportingController"),
        _ => {}
    }
    let mut current = object;
    for part in field.split('.') {
        match current.get(part) {
            Some(v) => current = v,
            None => return String::new(),
        }
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn split_unescaped_commas(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => escaped = false,
        }
    }
    parts.push(&text[start..]);
    parts
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

/// The field labels a kind supports in field selectors, beyond `metadata.name`/`metadata.namespace`.
pub fn supported_fields(group: &str, kind: &str) -> Vec<&'static str> {
    let mut fields = vec!["metadata.name", "metadata.namespace"];
    match (group, kind) {
        ("", "Pod") => fields.extend([
            "status.phase",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.podIP",
            "status.nominatedNodeName",
        ]),
        ("", "Namespace") => fields.push("status.phase"),
        ("", "Secret") => fields.push("type"),
        ("", "Node") => fields.push("spec.unschedulable"),
        ("", "Event") => fields.extend([
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]),
        ("apps", "ReplicaSet") => fields.push("status.replicas"),
        ("batch", "Job") => fields.push("status.successful"),
        _ => {}
    }
    fields
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "labels": labels}})
    }

    #[test]
    fn label_operators() -> Result<(), SelectorError> {
        let obj = labelled(json!({"app": "web", "tier": "front", "n": "5"}));
        for (sel, expected) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("missing notin (web)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier=back", false),
            ("n>4,n<6", true),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(sel)?.matches(&obj), expected, "{sel}");
        }
        Ok(())
    }

    #[test]
    fn bad_label_selectors_are_rejected() {
        for sel in ["app=we b", "a b c", "app in web", "=x", "app,,tier"] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel}");
        }
    }

    #[test]
    fn field_selectors() -> Result<(), SelectorError> {
        let fields = supported_fields("", "Pod");
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Running"}});
        assert!(FieldSelector::parse("metadata.name=p,status.phase==Running", &fields)?.matches(&pod));
        assert!(!FieldSelector::parse("status.phase!=Running", &fields)?.matches(&pod));
        assert!(FieldSelector::parse("spec.nodeName=", &fields)?.matches(&pod));
        assert_eq!(
            FieldSelector::parse("spec.bogus=1", &fields),
            Err(SelectorError("field label not supported: spec.bogus".into()))
        );
        Ok(())
    }
}
