//! Objects from manifest files (`kazan serve --load FILE.yaml`).
//!
//! The format is what `kubectl apply -f` reads: YAML documents separated by `---` lines (JSON
//! being YAML, a JSON object or a stream of them works too), empty documents skipped, and `List`
//! kinds (`kind: List`, `ConfigMapList`...) replaced by their items. Errors name the document by
//! its number and first line so the user can find it.

use serde_json::Value;

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A document is not valid YAML or JSON.
    #[error("document {document} (line {line}): {message}")]
    Parse {
        /// 1-based number of the document in the file, counting empty ones.
        document: usize,
        /// 1-based line where the document starts.
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// A document parses but is not a Kubernetes object.
    #[error("document {document} (line {line}): {problem}")]
    NotAnObject {
        /// 1-based number of the document in the file.
        document: usize,
        /// 1-based line where the document starts.
        line: usize,
        /// What is missing or wrong, e.g. "no `kind`".
        problem: String,
    },
}

/// One `---`-separated document of the file.
struct Document<'a> {
    number: usize,
    line: usize,
    text: &'a str,
}

/// Splits YAML text at document markers: `---` (alone or followed by a space and content) and
/// `...` at the start of a line. YAML forbids both at column 0 inside a scalar, so a line-based
/// split is exact.
fn documents(text: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let marker = if bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") {
            Some(3)
        } else if bare == "..." || bare.starts_with("... ") {
            Some(line.len())
        } else {
            None
        };
        if let Some(skip) = marker {
            documents.push(Document {
                number: documents.len() + 1,
                line: start_line,
                text: &text[start..offset],
            });
            // Content after `--- ` on the same line belongs to the next document.
            start = offset + skip.min(line.len());
            start_line = index + 1;
        }
        offset += line.len();
    }
    documents.push(Document {
        number: documents.len() + 1,
        line: start_line,
        text: &text[start..],
    });
    documents
}

/// Whether a document holds nothing but blank lines, comments and directives.
fn is_empty(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line.starts_with('%')
    })
}

/// Parses YAML or JSON manifests: several `---`-separated documents; `List` kinds are flattened.
pub fn parse_manifests(text: &str) -> Result<Vec<serde_json::Value>, LoadError> {
    let mut objects = Vec::new();
    for document in documents(text) {
        if is_empty(document.text) {
            continue;
        }
        let parse_error = |message: String| LoadError::Parse {
            document: document.number,
            line: document.line,
            message,
        };
        let trimmed = document.text.trim_start();
        let values: Vec<Value> = if trimmed.starts_with('{') {
            // JSON, possibly several objects in a row (as `kubectl get -o json` output piles up).
            serde_json::Deserializer::from_str(trimmed)
                .into_iter::<Value>()
                .collect::<Result<_, _>>()
                .map_err(|e| parse_error(e.to_string()))?
        } else {
            let value: Value =
                serde_saphyr::from_str(document.text).map_err(|e| parse_error(e.to_string()))?;
            vec![value]
        };
        for value in values {
            if value.is_null() {
                continue;
            }
            flatten(value, &document, &mut objects)?;
        }
    }
    Ok(objects)
}

/// Checks that `value` is an object with `apiVersion` and `kind`, replacing a list by its items.
fn flatten(value: Value, document: &Document<'_>, out: &mut Vec<Value>) -> Result<(), LoadError> {
    let problem = |problem: String| LoadError::NotAnObject {
        document: document.number,
        line: document.line,
        problem,
    };
    let Value::Object(mut object) = value else {
        return Err(problem(format!(
            "expected a mapping with apiVersion and kind, found {}",
            kind_of(&value)
        )));
    };
    let kind = match object.get("kind") {
        Some(Value::String(kind)) if !kind.is_empty() => kind.clone(),
        _ => return Err(problem("no `kind`".to_string())),
    };
    let api_version = match object.get("apiVersion") {
        Some(Value::String(v)) if !v.is_empty() => v.clone(),
        _ => return Err(problem(format!("{kind} has no `apiVersion`"))),
    };
    if kind.ends_with("List") && object.contains_key("items") {
        let items = match object.remove("items") {
            Some(Value::Array(items)) => items,
            Some(Value::Null) => Vec::new(),
            _ => return Err(problem(format!("{kind}: `items` is not a list"))),
        };
        // Items of a typed list (`ConfigMapList`) may leave out their own apiVersion and kind.
        let item_kind = kind
            .strip_suffix("List")
            .filter(|k| !k.is_empty())
            .map(str::to_string);
        for (index, mut item) in items.into_iter().enumerate() {
            if let (Value::Object(fields), Some(item_kind)) = (&mut item, &item_kind)
                && kind != "List"
            {
                fields
                    .entry("apiVersion")
                    .or_insert_with(|| Value::String(api_version.clone()));
                fields
                    .entry("kind")
                    .or_insert_with(|| Value::String(item_kind.clone()));
            }
            flatten(item, document, out).map_err(|e| match e {
                LoadError::NotAnObject {
                    document,
                    line,
                    problem,
                } => LoadError::NotAnObject {
                    document,
                    line,
                    problem: format!("{kind} item {}: {problem}", index + 1),
                },
                other => other,
            })?;
        }
        return Ok(());
    }
    if !matches!(object.get("metadata"), Some(Value::Object(_))) {
        return Err(problem(format!("{kind} has no `metadata`")));
    }
    out.push(Value::Object(object));
    Ok(())
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn several_documents_with_empty_ones_and_comments() -> Result<(), LoadError> {
        let text = "\
# leading comment
---
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
# only a comment
---

--- 
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: demo}
data:
  script: |
    echo ---not a marker
    ok: yes
...
";
        let objects = parse_manifests(text)?;
        assert_eq!(
            objects,
            [
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "demo"},
                       "data": {"script": "echo ---not a marker\nok: yes\n"}}),
            ]
        );
        Ok(())
    }

    #[test]
    fn yaml_scalars_keep_their_types() -> Result<(), LoadError> {
        let objects = parse_manifests(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3, paused: false, x: '3'}\n",
        )?;
        assert_eq!(
            objects[0]["spec"],
            json!({"replicas": 3, "paused": false, "x": "3"})
        );
        Ok(())
    }

    #[test]
    fn lists_are_flattened_and_typed_list_items_get_their_kind() -> Result<(), LoadError> {
        let text = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: a}
- apiVersion: v1
  kind: ConfigMapList
  items:
  - metadata: {name: b, namespace: a}
"#;
        let names: Vec<(String, String)> = parse_manifests(text)?
            .iter()
            .map(|o| {
                (
                    o["kind"].as_str().unwrap_or("?").into(),
                    o["metadata"]["name"].as_str().unwrap_or("?").into(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [("Namespace".into(), "a".into()), ("ConfigMap".into(), "b".into())]
        );
        Ok(())
    }

    #[test]
    fn json_objects_and_streams() -> Result<(), LoadError> {
        let text = r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}
{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}}"#;
        assert_eq!(parse_manifests(text)?.len(), 2);
        Ok(())
    }

    #[test]
    fn empty_input_gives_no_objects() -> Result<(), LoadError> {
        assert!(parse_manifests("")?.is_empty());
        assert!(parse_manifests("---\n# nothing\n---\n")?.is_empty());
        Ok(())
    }

    #[test]
    fn errors_name_the_document_and_its_line() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [unclosed\n";
        let error = parse_manifests(text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.starts_with("document 2 (line 4): "), "{error}");

        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nmetadata: {name: b}\n";
        let error = parse_manifests(text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(error, "document 2 (line 4): no `kind`");

        let error = parse_manifests("just a string\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            error,
            "document 1 (line 1): expected a mapping with apiVersion and kind, found a string"
        );

        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod}\n";
        let error = parse_manifests(text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(error, "document 1 (line 1): List item 1: Pod has no `metadata`");
    }
}
