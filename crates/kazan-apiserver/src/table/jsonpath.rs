//! The simple JSONPath of printer columns (`additionalPrinterColumns` in a CRD): `.a.b`, `.a[0]`,
//! `.a[*].b`, `.a['b.c']`, `.metadata.labels.app\.kubernetes\.io/name`, optionally in `{...}`
//! and after `$`. Filters and recursive descent are not printer-column material and match nothing.

use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    All,
}

/// Every value `path` selects in `object`, in document order.
pub(crate) fn evaluate<'a>(object: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(steps) = parse(path) else {
        return Vec::new();
    };
    let mut current = vec![object];
    for step in &steps {
        let mut next = Vec::new();
        for value in current {
            match step {
                Step::Key(key) => next.extend(value.get(key.as_str())),
                Step::Index(i) => next.extend(value.get(*i)),
                Step::All => match value {
                    Value::Array(items) => next.extend(items.iter()),
                    Value::Object(map) => next.extend(map.values()),
                    _ => {}
                },
            }
        }
        current = next;
    }
    current
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path)
        .trim();
    let path = path.strip_prefix('$').unwrap_or(path);
    let chars: Vec<char> = path.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                if chars.get(i) == Some(&'.') {
                    return None; // recursive descent
                }
                let mut key = String::new();
                while let Some(&c) = chars.get(i) {
                    match c {
                        '\\' => {
                            key.extend(chars.get(i + 1));
                            i += 2;
                        }
                        '.' | '[' => break,
                        _ => {
                            key.push(c);
                            i += 1;
                        }
                    }
                }
                match key.as_str() {
                    "" => {}
                    "*" => steps.push(Step::All),
                    _ => steps.push(Step::Key(key)),
                }
            }
            '[' => {
                let close = chars.get(i..)?.iter().position(|&c| c == ']')? + i;
                let inner: String = chars.get(i + 1..close)?.iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Ok(index) = inner.parse::<usize>() {
                    steps.push(Step::Index(index));
                } else if let Some(key) = inner
                    .strip_prefix('\'')
                    .and_then(|k| k.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
                {
                    steps.push(Step::Key(key.to_string()));
                } else {
                    return None; // filters, slices, negative indexes
                }
                i = close + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn selects_keys_indexes_and_wildcards() {
        let pod = json!({
            "metadata": {"labels": {"app.kubernetes.io/name": "web", "tier": "front"}},
            "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
        });
        assert_eq!(
            evaluate(&pod, ".spec.containers[*].name"),
            [&json!("a"), &json!("b")]
        );
        assert_eq!(evaluate(&pod, "{.spec.containers[1].image}"), [&json!("y")]);
        assert_eq!(evaluate(&pod, "$.spec.containers[0]['name']"), [&json!("a")]);
        assert_eq!(
            evaluate(&pod, r".metadata.labels.app\.kubernetes\.io/name"),
            [&json!("web")]
        );
        assert_eq!(
            evaluate(&pod, ".metadata.labels['app.kubernetes.io/name']"),
            [&json!("web")]
        );
        assert_eq!(evaluate(&pod, ".metadata.labels.*").len(), 2);
    }

    #[test]
    fn missing_fields_and_unsupported_syntax_select_nothing() {
        let pod = json!({"status": {"phase": "Running"}});
        assert!(evaluate(&pod, ".status.podIP").is_empty());
        assert!(evaluate(&pod, ".spec.containers[3].name").is_empty());
        assert!(evaluate(&pod, "..phase").is_empty());
        assert!(evaluate(&pod, ".items[?(@.x==1)]").is_empty());
        assert!(evaluate(&pod, "status").is_empty());
    }
}
