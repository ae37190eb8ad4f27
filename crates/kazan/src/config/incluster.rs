//! The configuration of a pod: the API server from `KUBERNETES_SERVICE_HOST`/`_PORT`, the
//! service-account token (as a file, re-read when the kubelet rotates it), its CA, and the pod's
//! namespace.

use super::{AuthConfig, Config, ConfigEnv, ConfigError};
use crate::tls::pem;

pub(super) fn load(env: &ConfigEnv) -> Result<Config, ConfigError> {
    let host = env
        .service_host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(ConfigError::InClusterEnvMissing {
            var: "KUBERNETES_SERVICE_HOST",
        })?;
    let port = env
        .service_port
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or(ConfigError::InClusterEnvMissing {
            var: "KUBERNETES_SERVICE_PORT",
        })?;
    let invalid = |reason: String| ConfigError::InvalidUrl {
        field: "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT",
        entry: "the in-cluster environment".to_string(),
        reason,
    };
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(format!("port `{port}` is not a number from 0 to 65535")))?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let url: http::Uri = format!("https://{host}:{port}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(format!("host `{host}`: {e}")))?;

    let dir = &env.service_account_dir;
    // Like client-go, refuse to start without a readable token; it is read again on use.
    let token_path = dir.join("token");
    std::fs::File::open(&token_path).map_err(|source| ConfigError::ReadFile {
        what: "service-account token".to_string(),
        path: token_path.clone(),
        source,
    })?;

    let ca_path = dir.join("ca.crt");
    let root_certs_pem = match std::fs::read(&ca_path) {
        Ok(ca) => match pem::check_certificates(&ca) {
            Ok(()) => Some(ca),
            Err(reason) => {
                return Err(ConfigError::InvalidPem {
                    what: format!("service-account CA {}", ca_path.display()),
                    reason,
                });
            }
        },
        Err(e) => {
            // client-go carries on with the system's roots; so do we, loudly.
            tracing::warn!(path = %ca_path.display(), error = %e, "cannot read the service-account CA; trusting the system's roots");
            None
        }
    };

    let namespace = std::fs::read_to_string(dir.join("namespace"))
        .ok()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string());

    let mut config = Config::new(url);
    config.root_certs_pem = root_certs_pem;
    config.auth = AuthConfig::TokenFile(token_path);
    config.default_namespace = namespace;
    config.origin = format!("in-cluster service account ({})", dir.display());
    Ok(config)
}
