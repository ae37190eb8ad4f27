//! The rustls configuration: which roots to trust, whether to verify at all, and which client
//! certificate to present.
//!
//! One crypto provider (`ring`) is chosen here explicitly and handed to every rustls builder, so
//! the client never depends on a process-wide default provider (and never panics for lack of one).

use std::sync::Arc;

use rustls::{
    ClientConfig, DigitallySignedStruct, InconsistentKeys, RootCertStore, SignatureScheme,
    client::{
        Resumption,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
    sign::CertifiedKey,
};
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, ServerName, UnixTime,
    pem::{self, PemObject},
};
use secrecy::ExposeSecret;

use crate::{
    auth::PluginCertificate,
    config::{ClientIdentity, Config},
    error::ClientSetupError,
};

/// The crypto provider every TLS object of the client uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

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

/// A client certificate chain and its private key, ready for handshakes: the key is loaded by the
/// crypto provider and compared with the first certificate's public key. Errors never quote the
/// key.
///
/// Only a key proven not to match is refused. When the comparison cannot be made, because
/// rustls cannot read the certificate (an X.509 v1 certificate, which webpki refuses and Go's
/// API servers accept) or the key does not tell its public half, the server is left to judge.
pub(crate) fn certified_key(identity: &ClientIdentity) -> Result<CertifiedKey, ClientSetupError> {
    let chain = certificates(&identity.cert_pem, "client certificate")?;
    let key = private_key(identity.key_pem.expose_secret())?;
    let key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|source| ClientSetupError::InvalidClientIdentity { source })?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Err(source @ rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(ClientSetupError::InvalidClientIdentity { source })
        }
        Ok(()) | Err(_) => Ok(certified),
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

/// Every `CERTIFICATE` block of a PEM bundle; at least one.
fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, ClientSetupError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ClientSetupError::CertificatePem { what, source })?;
    if certs.is_empty() {
        return Err(ClientSetupError::NoCertificate { what });
    }
    Ok(certs)
}

/// The first private key of a PEM document: `RSA PRIVATE KEY` (PKCS#1), `EC PRIVATE KEY` (SEC1)
/// or `PRIVATE KEY` (PKCS#8). Errors never quote the PEM: it is a secret.
fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, ClientSetupError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| ClientSetupError::InvalidClientKey {
        reason: match e {
            pem::Error::NoItemsFound => {
                "no PEM private key found (expected a RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY block; an encrypted key is not supported)"
            }
            pem::Error::MissingSectionEnd { .. } => "a PEM block has no END line",
            pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
            pem::Error::Base64Decode(_) => "the PEM block is not valid base64",
            pem::Error::SectionTooLarge => "the PEM block is too large",
            _ => "the PEM cannot be read",
        },
    })
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
    fn key_errors_name_the_problem_without_quoting_the_key() {
        let pem =
            b"-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw!!\n-----END RSA PRIVATE KEY-----\n";
        let err = private_key(pem).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("not valid base64"), "{err}");
        assert!(!err.contains("c2VjcmV0"), "{err}");

        let err = private_key(b"no key here").err().map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("no PEM private key found"));
    }

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
