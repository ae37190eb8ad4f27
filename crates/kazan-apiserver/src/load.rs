//! Objects from manifest files (`kazan serve --load FILE.yaml`).

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Placeholder until written.
    #[error("cannot parse manifests: {0}")]
    Parse(String),
}

/// Parses YAML or JSON manifests: several `---`-separated documents; `List` kinds are flattened.
pub fn parse_manifests(text: &str) -> Result<Vec<serde_json::Value>, LoadError> {
    let _ = text;
    Err(LoadError::Parse("not written yet".into()))
}
