//! TLS material, below both the configuration and the client: the one crypto provider, PEM
//! certificates and keys read and checked, and a certificate with its key made ready for rustls.
//! The kubeconfig loader (checks), the exec plugin (its client certificates) and the client (its
//! rustls configuration) all use it; none of them reaches into another for it.

pub(crate) mod pem;

use std::sync::Arc;

use rustls::{InconsistentKeys, crypto::CryptoProvider, sign::CertifiedKey};
use secrecy::ExposeSecret;

use crate::{config::ClientIdentity, error::ClientSetupError};
use pem::{certificates, private_key};

/// The crypto provider every TLS object of the client uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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
