//! The kubeconfig a server emits: one cluster, context and user named `kazan`, with the server URL,
//! the CA (when TLS is on) and the bearer token (when auth is on).

use base64::Engine;

/// Renders the kubeconfig YAML.
pub(crate) fn render(url: &str, ca_pem: Option<&str>, token: Option<&str>) -> String {
    let mut out = String::new();
    out.push_str("apiVersion: v1\nkind: Config\nclusters:\n- name: kazan\n  cluster:\n");
    out.push_str(&format!("    server: {url}\n"));
    if let Some(ca) = ca_pem {
        let data = base64::engine::general_purpose::STANDARD.encode(ca.as_bytes());
        out.push_str(&format!("    certificate-authority-data: {data}\n"));
    }
    out.push_str(
        "contexts:\n- name: kazan\n  context:\n    cluster: kazan\n    user: kazan\n    namespace: default\n",
    );
    out.push_str("current-context: kazan\nusers:\n- name: kazan\n");
    match token {
        // Quoted so any token survives YAML parsing as a string.
        Some(token) => out.push_str(&format!(
            "  user:\n    token: \"{}\"\n",
            token.replace('\\', "\\\\").replace('"', "\\\"")
        )),
        None => out.push_str("  user: {}\n"),
    }
    out.push_str("preferences: {}\n");
    out
}
