//! Fuzz target for PATCH bodies: parsing (JSON, or YAML for apply) and applying merge, JSON,
//! strategic and apply patches to arbitrary documents.
//!
//! Properties: nothing panics, whatever the body or the document; a merge patch follows RFC 7386
//! exactly (checked against a plain implementation of the RFC), `{}` changes nothing and applying
//! a patch twice changes nothing more; a strategic merge patch without lists or directives is a
//! merge patch; a JSON patch `test` of a value at its own pointer (keys with `~` and `/` escaped as
//! `~0` and `~1`) passes and changes nothing, a `test` of another value fails with an apply error,
//! and `add` then `remove` of a new member gives the document back. `PROPTEST_CASES=N` runs more
//! cases; `tests/corpus/patch/<kind>/` is replayed.

use std::path::PathBuf;

use kazan_test_support::fuzz_config;
use proptest::{prelude::*, test_runner::TestCaseError};
use serde_json::{Map, Value, json};

use super::{PatchError, PatchKind, apply, parse_body};

const KINDS: [PatchKind; 4] = [
    PatchKind::Merge,
    PatchKind::Json,
    PatchKind::Strategic,
    PatchKind::Apply,
];

/// Keys that matter to the patchers: pointer escapes, directives, merge keys.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "a", "b", "spec", "name", "containers", "ports", "env", "image", "~", "/", "~0", "a/b", "x~1y", "",
            "$patch", "$retainKeys", "$setElementOrder/containers", "$deleteFromPrimitiveList/b", "-", "0",
        ])
        .prop_map(str::to_string),
        1 => any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(vec!["replace", "delete", "merge", "x", ""]).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

/// Any JSON document, a few levels deep.
fn document() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Documents without arrays or `$` keys (for comparing strategic and merge patches).
fn plain_document() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 5, |inner| {
        let plain_key = key().prop_filter("no directive", |k| !k.starts_with('$'));
        prop::collection::vec((plain_key, inner), 0..5)
            .prop_map(|members| Value::Object(members.into_iter().collect()))
    })
}

/// An object: `document` itself when it is one, else wrapped in one.
fn object(document: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    (document, key()).prop_map(|(doc, key)| match doc {
        Value::Object(map) => Value::Object(map),
        other => {
            let key = if key.starts_with('$') {
                "spec".to_string()
            } else {
                key
            };
            Value::Object(Map::from_iter([(key, other)]))
        }
    })
}

/// RFC 7386, section 2, as written.
fn merge_reference(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut target = match target {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    for (name, value) in patch {
        if value.is_null() {
            target.remove(name);
        } else {
            let current = target.get(name).cloned().unwrap_or(Value::Null);
            target.insert(name.clone(), merge_reference(&current, value));
        }
    }
    Value::Object(target)
}

/// Every JSON pointer in `doc`, with its value (keys escaped: `~` as `~0`, `/` as `~1`).
fn pointers(doc: &Value, prefix: String, out: &mut Vec<(String, Value)>) {
    out.push((prefix.clone(), doc.clone()));
    match doc {
        Value::Object(map) => {
            for (k, v) in map {
                pointers(
                    v,
                    format!("{prefix}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{prefix}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Applies `patch` to `target` every way, through the body parser as the server does.
fn check_any_patch(target: &Value, body: &[u8]) {
    for kind in KINDS {
        if let Ok(patch) = parse_body(kind, body) {
            let _ = apply(kind, target, &patch);
        }
    }
}

proptest! {
    #![proptest_config(fuzz_config(512))]

    /// Any body, any document: a result or a typed error.
    #[test]
    fn fuzz_patch_any_body(
        target in document(),
        patch in document(),
        noise in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        check_any_patch(&target, patch.to_string().as_bytes());
        check_any_patch(&target, &noise);
        for kind in KINDS {
            let _ = apply(kind, &target, &patch);
        }
    }

    /// JSON patch operations with paths taken from the document (and some that are not in it).
    #[test]
    fn fuzz_patch_json_operations(
        target in object(document()),
        ops in prop::collection::vec(
            (
                prop::sample::select(vec!["add", "remove", "replace", "move", "copy", "test", "bogus"]),
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                leaf(),
            ),
            0..6,
        ),
    ) {
        let mut paths = Vec::new();
        pointers(&target, String::new(), &mut paths);
        let mut extra: Vec<String> = vec!["/-".into(), "/a/-".into(), "/nope/deeper".into(), "no-slash".into(), "/~2".into(), "/0/1".into()];
        extra.extend(paths.iter().map(|(p, _)| format!("{p}/-")));
        let all: Vec<String> = paths.iter().map(|(p, _)| p.clone()).chain(extra).collect();
        let ops: Vec<Value> = ops
            .into_iter()
            .map(|(op, path, from, value)| json!({"op": op, "path": path.get(&all), "from": from.get(&all), "value": value}))
            .collect();
        let _ = apply(PatchKind::Json, &target, &Value::Array(ops));
    }

    /// `test` passes at every pointer with its own value and fails with another; `add` and
    /// `remove` of a new member undo each other.
    #[test]
    fn fuzz_patch_json_test_and_undo(
        target in object(document()),
        pick in any::<prop::sample::Index>(),
        other in leaf(),
        new_key in key(),
        new_value in document(),
    ) {
        let mut paths = Vec::new();
        pointers(&target, String::new(), &mut paths);
        let (path, value) = pick.get(&paths).clone();
        let same = apply(PatchKind::Json, &target, &json!([{"op": "test", "path": path, "value": value}]));
        let same = same.map_err(|e| TestCaseError::fail(format!("test of {value} at {path:?}: {e}")))?;
        prop_assert_eq!(&same, &target);
        if other != value {
            let differs = apply(PatchKind::Json, &target, &json!([{"op": "test", "path": path, "value": other}]));
            prop_assert!(matches!(differs, Err(PatchError::Apply(_))), "test of another value at {:?}", path);
        }
        if target.get(&new_key).is_none() {
            let pointer = format!("/{}", new_key.replace('~', "~0").replace('/', "~1"));
            let added = apply(PatchKind::Json, &target, &json!([{"op": "add", "path": pointer, "value": new_value}]))
                .map_err(|e| TestCaseError::fail(format!("add at {pointer:?}: {e}")))?;
            prop_assert_eq!(added.get(&new_key), Some(&new_value));
            let removed = apply(PatchKind::Json, &added, &json!([{"op": "remove", "path": pointer}]))
                .map_err(|e| TestCaseError::fail(format!("remove at {pointer:?}: {e}")))?;
            prop_assert_eq!(&removed, &target);
        }
    }

    /// Merge patches follow RFC 7386; `{}` is a no-op; a patch applied twice is applied once.
    #[test]
    fn fuzz_patch_merge_is_rfc_7386(target in object(document()), patch in object(document())) {
        let merged = apply(PatchKind::Merge, &target, &patch).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&merged, &merge_reference(&target, &patch));
        let again = apply(PatchKind::Merge, &merged, &patch).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&again, &merged);
        let unchanged = apply(PatchKind::Merge, &target, &json!({})).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&unchanged, &target);
    }

    /// Without lists or directives, a strategic merge patch (and an apply patch) is a merge patch.
    #[test]
    fn fuzz_patch_strategic_without_lists_is_merge(target in object(plain_document()), patch in object(plain_document())) {
        let merged = apply(PatchKind::Merge, &target, &patch).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for kind in [PatchKind::Strategic, PatchKind::Apply] {
            let strategic = apply(kind, &target, &patch).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&strategic, &merged, "{:?}", kind);
        }
        let unchanged = apply(PatchKind::Strategic, &target, &json!({})).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&unchanged, &target);
    }
}

/// Every file of `tests/corpus/patch/<kind>/` (kind: `merge`, `json`, `strategic`, `apply`) as
/// a body of that kind, and of every other kind, against a pod, an empty object and a deep one.
#[test]
fn fuzz_patch_corpus_replays() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/patch");
    let targets = [
        json!({}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a/b": "1", "~": "2"}},
               "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}]}}),
        json!({"a": {"b": {"c": [1, {"d": null}]}}}),
        json!({"a": [0, [1]], "spec": {"containers": [[{"name": "c"}]]}}),
    ];
    let mut replayed = 0;
    for kind_dir in std::fs::read_dir(&dir)? {
        for entry in std::fs::read_dir(kind_dir?.path())? {
            let body = std::fs::read(entry?.path())?;
            for target in &targets {
                check_any_patch(target, &body);
            }
            replayed += 1;
        }
    }
    assert!(replayed >= 8, "only {replayed} corpus files");
    Ok(())
}
