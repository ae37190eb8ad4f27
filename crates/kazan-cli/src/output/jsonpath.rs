//! kubectl's JSONPath templates (`-o jsonpath=...`) and custom columns (`-o custom-columns=...`),
//! as client-go's `util/jsonpath` reads them: text, `{.path}`, `{range .path}...{end}` and string
//! literals (`{"\n"}`); paths with `.key`, `['key']`, `[n]`, `[*]`, `.*` and equality filters
//! (`[?(@.type=="Ready")]`). Several results of one expression print separated by a space.

use serde_json::Value;

/// Why a template or a column spec cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(i64),
    All,
    /// `[?(@.path == "value")]` (or `!=`).
    Filter {
        path: Vec<Step>,
        equal: bool,
        value: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// A parsed `-o jsonpath=` template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Node>);

impl Template {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = closing_brace(after)
                .ok_or_else(|| TemplateError(format!("unclosed {{ in the template {text:?}")))?;
            pieces.push(Piece::Action(after[..close].trim().to_string()));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        let mut pieces = pieces.into_iter();
        let nodes = nodes(&mut pieces, text, false)?;
        Ok(Template(nodes))
    }

    /// The template applied to `data`.
    pub fn render(&self, data: &Value) -> String {
        let mut out = String::new();
        render(&self.0, data, &mut out);
        out
    }
}

/// Where the `}` closing an action is, skipping braces inside quotes.
fn closing_brace(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(_), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '}') => return Some(i),
            _ => {}
        }
        escaped = false;
    }
    None
}

enum Piece {
    Text(String),
    Action(String),
}

fn nodes(
    pieces: &mut impl Iterator<Item = Piece>,
    text: &str,
    in_range: bool,
) -> Result<Vec<Node>, TemplateError> {
    let mut nodes = Vec::new();
    while let Some(piece) = pieces.next() {
        match piece {
            Piece::Text(t) => nodes.push(Node::Text(t)),
            Piece::Action(a) if a == "end" => {
                return if in_range {
                    Ok(nodes)
                } else {
                    Err(TemplateError(format!("{{end}} without {{range}} in {text:?}")))
                };
            }
            Piece::Action(a) if a.starts_with("range ") => {
                let path = parse_path(a.trim_start_matches("range ").trim())?;
                let body = nodes_in_range(pieces, text)?;
                nodes.push(Node::Range(path, body));
            }
            Piece::Action(a) if a.starts_with('"') || a.starts_with('\'') => {
                nodes.push(Node::Text(unquote(&a)));
            }
            Piece::Action(a) => nodes.push(Node::Path(parse_path(&a)?)),
        }
    }
    if in_range {
        return Err(TemplateError(format!("{{range}} without {{end}} in {text:?}")));
    }
    Ok(nodes)
}

fn nodes_in_range(pieces: &mut impl Iterator<Item = Piece>, text: &str) -> Result<Vec<Node>, TemplateError> {
    nodes(pieces, text, true)
}

/// A string literal's text, with `\n`, `\t`, `\\` and quotes unescaped.
fn unquote(literal: &str) -> String {
    let inner = &literal[1..literal.len().saturating_sub(1).max(1)];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Parses `.a.b[0]['c.d'][*][?(@.x=="y")]`, `$` and `@` allowed in front.
fn parse_path(path: &str) -> Result<Vec<Step>, TemplateError> {
    let bad = || TemplateError(format!("cannot read the JSONPath {path:?}"));
    let text = path.trim();
    let text = text
        .strip_prefix('$')
        .or_else(|| text.strip_prefix('@'))
        .unwrap_or(text);
    let chars: Vec<char> = text.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let mut key = String::new();
                while let Some(&c) = chars.get(i) {
                    match c {
                        '\\' => {
                            key.extend(chars.get(i + 1));
                            i += 2;
                        }
                        '.' | '[' => break,
                        c => {
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
                let close = (i..chars.len())
                    .find(|&j| chars[j] == ']' && !inside_quotes(&chars[i..j]))
                    .ok_or_else(bad)?;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                steps.push(if inner == "*" {
                    Step::All
                } else if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
                    parse_filter(filter).ok_or_else(bad)?
                } else if inner.starts_with('\'') || inner.starts_with('"') {
                    Step::Key(unquote(inner))
                } else {
                    Step::Index(inner.parse().map_err(|_| bad())?)
                });
                i = close + 1;
            }
            _ => {
                // A bare first key (`metadata.name`).
                let end = (i..chars.len())
                    .find(|&j| chars[j] == '.' || chars[j] == '[')
                    .unwrap_or(chars.len());
                steps.push(Step::Key(chars[i..end].iter().collect()));
                i = end;
            }
        }
    }
    Ok(steps)
}

fn inside_quotes(chars: &[char]) -> bool {
    chars.iter().filter(|c| **c == '"' || **c == '\'').count() % 2 == 1
}

fn parse_filter(filter: &str) -> Option<Step> {
    let (left, right, equal) = match filter.split_once("==") {
        Some((l, r)) => (l, r, true),
        None => {
            let (l, r) = filter.split_once("!=")?;
            (l, r, false)
        }
    };
    let path = parse_path(left.trim()).ok()?;
    let right = right.trim();
    let value = if right.starts_with('"') || right.starts_with('\'') {
        unquote(right)
    } else {
        right.to_string()
    };
    Some(Step::Filter { path, equal, value })
}

/// Every value `steps` select in `data`, in document order.
fn select<'a>(data: &'a Value, steps: &[Step]) -> Vec<&'a Value> {
    let mut current = vec![data];
    for step in steps {
        let mut next = Vec::new();
        for value in current {
            match step {
                Step::Key(key) => next.extend(value.get(key.as_str())),
                Step::Index(i) => {
                    if let Some(items) = value.as_array() {
                        let index = if *i < 0 { items.len() as i64 + i } else { *i };
                        next.extend(usize::try_from(index).ok().and_then(|i| items.get(i)));
                    }
                }
                Step::All => match value {
                    Value::Array(items) => next.extend(items.iter()),
                    Value::Object(map) => next.extend(map.values()),
                    _ => {}
                },
                Step::Filter {
                    path,
                    equal,
                    value: wanted,
                } => {
                    if let Some(items) = value.as_array() {
                        next.extend(items.iter().filter(|item| {
                            let found = select(item, path).first().map(|v| text(v));
                            (found.as_deref() == Some(wanted.as_str())) == *equal
                        }));
                    }
                }
            }
        }
        current = next;
    }
    current
}

/// A value as kubectl's JSONPath prints it: strings bare, anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn render(nodes: &[Node], data: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Path(steps) => {
                let values: Vec<String> = select(data, steps).into_iter().map(text).collect();
                out.push_str(&values.join(" "));
            }
            Node::Range(steps, body) => {
                for item in select(data, steps) {
                    render(body, item, out);
                }
            }
        }
    }
}

/// One JSONPath (`--sort-by=.metadata.name`).
#[derive(Debug, Clone, PartialEq)]
pub struct Path(Vec<Step>);

impl Path {
    /// Parses `.a.b`, with or without `{}`.
    pub fn parse(text: &str) -> Result<Path, TemplateError> {
        let text = text.trim();
        let text = text
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(text);
        Ok(Path(parse_path(text)?))
    }

    /// The first value the path selects in `data`.
    pub fn first<'a>(&self, data: &'a Value) -> Option<&'a Value> {
        select(data, &self.0).into_iter().next()
    }
}

/// A parsed `-o custom-columns=HEADER:.path,...` spec.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomColumns(Vec<(String, Vec<Step>)>);

impl CustomColumns {
    /// Parses `NAME:.metadata.name,RV:.metadata.resourceVersion`.
    pub fn parse(spec: &str) -> Result<CustomColumns, TemplateError> {
        let mut columns = Vec::new();
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (header, path) = part.split_once(':').ok_or_else(|| {
                TemplateError(format!(
                    "custom-columns: {part:?} is not HEADER:JSONPATH (e.g. NAME:.metadata.name)"
                ))
            })?;
            let path = path.trim();
            let path = path
                .strip_prefix('{')
                .and_then(|p| p.strip_suffix('}'))
                .unwrap_or(path);
            columns.push((header.to_string(), parse_path(path)?));
        }
        if columns.is_empty() {
            return Err(TemplateError("custom-columns: no column given".into()));
        }
        Ok(CustomColumns(columns))
    }

    /// The headers, as given.
    pub fn headers(&self) -> Vec<&str> {
        self.0.iter().map(|(h, _)| h.as_str()).collect()
    }

    /// One row: each column's values joined by `,`, `<none>` when there is none.
    pub fn row(&self, object: &Value) -> Vec<String> {
        self.0
            .iter()
            .map(|(_, steps)| {
                let values: Vec<String> = select(object, steps).into_iter().map(text).collect();
                if values.is_empty() {
                    "<none>".to_string()
                } else {
                    values.join(",")
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "web"}},
             "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Other", "status": "False"}]}},
            {"metadata": {"name": "b"}, "status": {"conditions": []}},
        ]})
    }

    #[test]
    fn templates_print_paths_ranges_literals_and_filters() -> Result<(), TemplateError> {
        let data = list();
        assert_eq!(Template::parse("{.items[*].metadata.name}")?.render(&data), "a b");
        assert_eq!(
            Template::parse(r#"{range .items[*]}{.metadata.name}{"\t"}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#)?
                .render(&data),
            "a\tTrue\nb\t\n"
        );
        assert_eq!(
            Template::parse(r"names: {.items[0].metadata.labels.app\.kubernetes\.io/name}")?.render(&data),
            "names: web"
        );
        assert_eq!(
            Template::parse("{.items[-1].metadata['name']}")?.render(&data),
            "b"
        );
        assert!(Template::parse("{range .items[*]}{.x}").is_err());
        assert!(Template::parse("{.items").is_err());
        Ok(())
    }

    #[test]
    fn custom_columns_join_values_and_say_none() -> Result<(), TemplateError> {
        let columns = CustomColumns::parse("NAME:.metadata.name,TYPES:.status.conditions[*].type")?;
        assert_eq!(columns.headers(), ["NAME", "TYPES"]);
        let data = list();
        assert_eq!(columns.row(&data["items"][0]), ["a", "Ready,Other"]);
        assert_eq!(columns.row(&data["items"][1]), ["b", "<none>"]);
        assert!(CustomColumns::parse("NAME").is_err());
        Ok(())
    }
}
