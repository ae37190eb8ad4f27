//! The rustls configuration: which roots to trust, whether to verify at all, and which client
//! certificate to present.
//!
//! One crypto provider (`ring`) is chosen here explicitly and handed to every rustls builder, so
//! the client never depends on a process-wide default provider (and never panics for lack of one).

use std::sync::Arc;

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        Resumption,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use secrecy::ExposeSecret;

use crate::{
    auth::PluginCertificate,
    config::Config,
    error::ClientSetupError,
    tls::{
        pem::{certificates, private_key},
        provider,
    },
};

/// Builds the rustls client configuration for `config`. ALPN is left empty: the HTTPS connector
/// sets `h2` and `http/1.1`.
///
/// The client certificate is the kubeconfig's ([`Config::client_identity`]) when it has one, as
/// client-go prefers it; else `plugin`'s, the exec plugin's current one, read at each handshake.
/// With a plugin certificate, TLS session resumption is off: a resumed session carries the
/// identity of the handshake that made it, so a connection opened after the certificate changed
/// could present the old one.
pub(crate) fn client_config(
    config: &Config,
    plugin: Option<Arc<PluginCertificate>>,
) -> Result<ClientConfig, ClientSetupError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(ClientSetupError::Tls)?;

    let builder = if config.insecure_skip_tls_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate { provider }))
    } else {
        let roots = match &config.root_certs_pem {
            Some(pem) => roots_from_pem(pem)?,
            None => system_roots()?,
        };
        builder.with_root_certificates(roots)
    };

    match &config.client_identity {
        Some(identity) => {
            let chain = certificates(&identity.cert_pem, "client certificate")?;
            let key = private_key(identity.key_pem.expose_secret())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|source| ClientSetupError::InvalidClientIdentity { source })
        }
        None => match plugin {
            Some(plugin) => {
                let mut tls = builder.with_client_cert_resolver(plugin);
                tls.resumption = Resumption::disabled();
                Ok(tls)
            }
            None => Ok(builder.with_no_client_auth()),
        },
    }
}

/// The server name to verify instead of the URL's host, if one is configured.
pub(crate) fn server_name_override(config: &Config) -> Result<Option<ServerName<'static>>, ClientSetupError> {
    let Some(name) = &config.tls_server_name else {
        return Ok(None);
    };
    // An IPv6 address may come bracketed, as in a URL.
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    ServerName::try_from(bare.to_string())
        .map(Some)
        .map_err(|_| ClientSetupError::InvalidServerName { name: name.clone() })
}

/// Every certificate of a PEM bundle, all of which must be trusted.
fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, ClientSetupError> {
    let what = "certificate authority";
    let mut roots = RootCertStore::empty();
    for (i, cert) in certificates(pem, what)?.into_iter().enumerate() {
        roots
            .add(cert)
            .map_err(|source| ClientSetupError::InvalidCaCertificate { index: i + 1, source })?;
    }
    Ok(roots)
}

/// The operating system's trusted roots; unparsable ones are skipped, as browsers do.
fn system_roots() -> Result<RootCertStore, ClientSetupError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors = found
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(ClientSetupError::NoSystemRoots { errors });
    }
    Ok(roots)
}

/// `insecure-skip-tls-verify`: accepts any certificate chain and name, but still checks that the
/// handshake is signed by the certificate's key, with the provider's algorithms.
#[derive(Debug)]
struct AnyServerCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_ca_bundle_is_refused() {
        let mut config = Config::new(http::Uri::from_static("https://127.0.0.1:6443"));
        config.root_certs_pem = Some(b"not a certificate".to_vec());
        let err = client_config(&config, None).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("the certificate authority holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)")
        );
    }

    #[test]
    fn bracketed_ipv6_server_names_are_accepted() -> Result<(), ClientSetupError> {
        let mut config = Config::new(http::Uri::from_static("https://[::1]:6443"));
        config.tls_server_name = Some("[::1]".into());
        assert!(server_name_override(&config)?.is_some());
        config.tls_server_name = Some("not a name!".into());
        assert!(server_name_override(&config).is_err());
        Ok(())
    }
}
