//! Fuzz target for label and field selectors.
//!
//! Properties: parsing any text gives a selector or a `SelectorError`, never a panic, and so does
//! matching any object; a selector written from known requirements, with any spacing the grammar
//! allows, parses to the same selector and selects exactly what a plain evaluation of those
//! requirements selects; an escaped field selector value matches itself. `PROPTEST_CASES=N` runs
//! more cases; `tests/corpus/label_selector/` and `tests/corpus/field_selector/` are replayed.

use std::{collections::BTreeMap, path::PathBuf};

use kazan_test_support::fuzz_config;
use proptest::{prelude::*, test_runner::TestCaseError};
use serde_json::{Value, json};

use super::{FieldSelector, LabelSelector, supported_fields};

/// A label requirement, for writing and for the plain evaluation.
#[derive(Debug, Clone)]
enum Req {
    Equals(String, String, &'static str),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

impl Req {
    /// The requirement's text, with `ws` (spaces or tabs) wherever the grammar allows it.
    fn write(&self, ws: &str) -> String {
        match self {
            Req::Equals(k, v, op) => format!("{ws}{k}{ws}{op}{ws}{v}{ws}"),
            Req::NotEquals(k, v) => format!("{ws}{k}{ws}!={ws}{v}{ws}"),
            Req::In(k, vs) => format!(
                "{ws}{k} {ws}in{ws}({ws}{}{ws}){ws}",
                vs.join(&format!("{ws},{ws}"))
            ),
            Req::NotIn(k, vs) => format!(
                "{ws}{k} {ws}notin{ws}({ws}{}{ws}){ws}",
                vs.join(&format!("{ws},{ws}"))
            ),
            Req::Exists(k) => format!("{ws}{k}{ws}"),
            Req::DoesNotExist(k) => format!("{ws}!{ws}{k}{ws}"),
            Req::GreaterThan(k, n) => format!("{ws}{k}{ws}>{ws}{n}{ws}"),
            Req::LessThan(k, n) => format!("{ws}{k}{ws}<{ws}{n}{ws}"),
        }
    }

    /// What the requirement means, as the Kubernetes documentation says it.
    fn holds(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |k: &String| labels.get(k).map(String::as_str);
        let int = |k: &String| get(k).and_then(|v| v.parse::<i64>().ok());
        match self {
            Req::Equals(k, v, _) => get(k) == Some(v),
            Req::NotEquals(k, v) => get(k) != Some(v),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Req::Exists(k) => labels.contains_key(k),
            Req::DoesNotExist(k) => !labels.contains_key(k),
            Req::GreaterThan(k, n) => int(k).is_some_and(|x| x > *n),
            Req::LessThan(k, n) => int(k).is_some_and(|x| x < *n),
        }
    }
}

/// Keys from a small set (so objects often carry them), prefixed ones included.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["app", "tier", "n", "in", "notin", "a.b_c-d", "x9"])
            .prop_map(str::to_string),
        Just("example.com/role".to_string()),
        "[a-z0-9]([a-z0-9._-]{0,8}[a-z0-9])?",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["web", "db", "5", "in", "a.b"]).prop_map(str::to_string),
        "[A-Za-z0-9]([A-Za-z0-9._-]{0,8}[A-Za-z0-9])?",
    ]
}

fn req() -> impl Strategy<Value = Req> {
    let set = || prop::collection::vec(value(), 1..4);
    prop_oneof![
        (
            key(),
            prop_oneof![value(), Just(String::new())],
            prop::sample::select(vec!["=", "=="])
        )
            .prop_map(|(k, v, op)| Req::Equals(k, v, op)),
        (key(), value()).prop_map(|(k, v)| Req::NotEquals(k, v)),
        (key(), set()).prop_map(|(k, vs)| Req::In(k, vs)),
        (key(), set()).prop_map(|(k, vs)| Req::NotIn(k, vs)),
        key().prop_map(Req::Exists),
        key().prop_map(Req::DoesNotExist),
        (key(), -10i64..10).prop_map(|(k, n)| Req::GreaterThan(k, n)),
        (key(), prop_oneof![-10i64..10, Just(i64::MIN), Just(i64::MAX)])
            .prop_map(|(k, n)| Req::LessThan(k, n)),
    ]
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        key(),
        prop_oneof![value(), (-12i64..12).prop_map(|n| n.to_string())],
        0..6,
    )
}

/// Text that looks like selectors: their tokens, shuffled, with some noise.
fn selector_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(
            "(app|tier|in|notin|!|=|==|!=|<|>|\\(|\\)|,| |\\t|\\\\|web|5|-|\\.|/|example\\.com|metadata\\.name|status\\.phase|[a-z]{1,3}|\\u{e9}|\\u{1F600})",
            0..24
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn objects() -> Vec<Value> {
    vec![
        json!({}),
        json!({"metadata": null}),
        json!({"metadata": {"labels": null}}),
        json!({"metadata": {"labels": {"app": 5, "tier": null}}}),
        json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web", "n": "5", "in": "in"}}, "status": {"phase": "Running"}, "spec": {"nodeName": 3, "hostNetwork": true}}),
        json!([1, 2]),
        json!("metadata"),
    ]
}

/// Parses `text` as both kinds of selector and matches the result against odd objects.
fn check_any_text(text: &str) {
    if let Ok(selector) = LabelSelector::parse(text) {
        for object in objects() {
            let _ = selector.matches(&object);
        }
    }
    for (group, kind) in [("", "Pod"), ("", "Event"), ("example.com", "Widget")] {
        if let Ok(selector) = FieldSelector::parse(text, &supported_fields(group, kind)) {
            for object in objects() {
                let _ = selector.matches(&object);
            }
        }
    }
}

/// A field selector value escaped as the real clients escape it.
fn escape_field_value(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn field_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

proptest! {
    #![proptest_config(fuzz_config(512))]

    /// Any text: a selector or an error, and matching never panics.
    #[test]
    fn fuzz_selector_any_text(text in selector_text()) {
        check_any_text(&text);
    }

    /// Written requirements parse, whatever the spacing, to one selector that selects what the
    /// requirements say.
    #[test]
    fn fuzz_selector_label_requirements(
        reqs in prop::collection::vec(req(), 0..5),
        ws in prop::sample::select(vec!["", " ", "  ", "\t", " \t "]),
        objects in prop::collection::vec(labels(), 1..8),
    ) {
        let tight: Vec<String> = reqs.iter().map(|r| r.write("")).collect();
        let spaced: Vec<String> = reqs.iter().map(|r| r.write(ws)).collect();
        let parsed = LabelSelector::parse(&tight.join(","))
            .map_err(|e| TestCaseError::fail(format!("{:?}: {e}", tight.join(","))))?;
        let parsed_spaced = LabelSelector::parse(&spaced.join(","))
            .map_err(|e| TestCaseError::fail(format!("{:?}: {e}", spaced.join(","))))?;
        prop_assert_eq!(&parsed, &parsed_spaced);
        prop_assert_eq!(parsed.is_empty(), reqs.is_empty());
        for labels in objects {
            let object = json!({"metadata": {"name": "x", "labels": labels}});
            let expected = reqs.iter().all(|r| r.holds(&labels));
            prop_assert_eq!(parsed.matches(&object), expected, "{:?} on {:?}", tight.join(","), labels);
        }
    }

    /// Field selectors: any value, escaped, selects the objects whose field has that value.
    #[test]
    fn fuzz_selector_field_values(
        reqs in prop::collection::vec(
            (
                prop::sample::select(supported_fields("", "Pod")),
                prop_oneof!["[a-zA-Z0-9,=!\\\\.-]{0,8}", any::<String>()]
                    .prop_filter("no outer whitespace", |v| v.trim() == v),
                any::<bool>(),
                prop::sample::select(vec!["=", "=="]),
            ),
            0..4,
        ),
        values in prop::collection::vec(
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i32>().prop_map(Value::from),
                "[a-zA-Z0-9,=!\\\\.-]{0,8}".prop_map(Value::from),
            ],
            10,
        ),
        reuse in any::<prop::sample::Index>(),
    ) {
        let fields = supported_fields("", "Pod");
        // An object with the fields set from `values`, one of them to a required value.
        let mut object = json!({});
        for (field, value) in fields.iter().zip(&values) {
            let mut at = &mut object;
            for part in field.split('.') {
                at = &mut at[part];
            }
            *at = value.clone();
        }
        if let Some((field, value, _, _)) = reqs.get(reuse.index(reqs.len().max(1))) {
            let mut at = &mut object;
            for part in field.split('.') {
                at = &mut at[part];
            }
            *at = Value::from(value.as_str());
        }
        let text: Vec<String> = reqs
            .iter()
            .map(|(field, value, negated, op)| {
                format!("{field}{}{}", if *negated { "!=" } else { op }, escape_field_value(value))
            })
            .collect();
        let selector = FieldSelector::parse(&text.join(","), &fields)
            .map_err(|e| TestCaseError::fail(format!("{:?}: {e}", text.join(","))))?;
        let expected = reqs.iter().all(|(field, value, negated, _)| {
            let actual = field.split('.').try_fold(&object, |at, part| at.get(part)).map(field_string).unwrap_or_default();
            (actual == *value) != *negated
        });
        prop_assert_eq!(selector.matches(&object), expected, "{:?} on {}", text.join(","), object);
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target)
}

/// Every line of every file of `tests/corpus/label_selector/` and `tests/corpus/field_selector/`
/// as a selector (and each file whole, newlines included).
#[test]
fn fuzz_selector_corpus_replays() -> Result<(), Box<dyn std::error::Error>> {
    let mut replayed = 0;
    for target in ["label_selector", "field_selector"] {
        for entry in std::fs::read_dir(corpus_dir(target))? {
            let bytes = std::fs::read(entry?.path())?;
            let text = String::from_utf8_lossy(&bytes);
            check_any_text(&text);
            for line in text.lines() {
                check_any_text(line);
            }
            replayed += 1;
        }
    }
    assert!(replayed >= 4, "only {replayed} corpus files");
    Ok(())
}
