//! The client certificate of an exec plugin (`status.clientCertificateData` and
//! `status.clientKeyData`), as rustls asks for it in each TLS handshake.
//!
//! The plugin runs before a request is sent (see [`ExecAuth`](super::exec::ExecAuth)), so a
//! connection opened for that request presents the certificate the plugin last returned. Each
//! change of certificate starts a new *generation*: the transport gives no new request to a
//! connection made in an earlier one (see `client/transport.rs`), as client-go's connection
//! rotation does, so that a refreshed certificate is used from the next request on.

use std::sync::{
    Arc, PoisonError, RwLock,
    atomic::{AtomicU64, Ordering},
};

use rustls::{SignatureScheme, client::ResolvesClientCert, sign::CertifiedKey};

/// The exec plugin's current client certificate and key, shared by the credential cache (which
/// replaces it) and the TLS configuration (which presents it).
#[derive(Default)]
pub(crate) struct PluginCertificate {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    /// Incremented whenever the certificate chain changes.
    generation: AtomicU64,
}

impl PluginCertificate {
    /// Replaces the certificate (`None`: the plugin returned none). A certificate chain equal to
    /// the current one keeps the generation, so a plugin that hands out the same certificate on
    /// every run does not make the client reconnect.
    pub(crate) fn set(&self, key: Option<Arc<CertifiedKey>>) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let same = match (current.as_deref(), key.as_deref()) {
            (None, None) => true,
            (Some(old), Some(new)) => old.cert == new.cert,
            _ => false,
        };
        *current = key;
        if !same {
            let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
            tracing::debug!(generation, "exec plugin client certificate changed");
        }
    }

    /// How many times the certificate has changed: connections made before the last change
    /// present an older certificate.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl std::fmt::Debug for PluginCertificate {
    // Never the key: only whether there is a certificate, and its generation.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginCertificate")
            .field("present", &self.current().is_some())
            .field("generation", &self.generation())
            .finish()
    }
}

impl ResolvesClientCert for PluginCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        // Whatever the server hints, as client-go does: the plugin knows which certificate to use.
        self.current()
    }

    /// Always `true`: rustls asks this as the handshake starts, to keep what it needs for signing
    /// a client certificate later, and the plugin may not have returned one yet. Answering `true`
    /// without a certificate only costs a buffer; the handshake then sends none.
    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientIdentity;

    fn certified(cn: &str) -> Result<Arc<CertifiedKey>, Box<dyn std::error::Error>> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key)?;
        let identity = ClientIdentity {
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes().into(),
        };
        Ok(Arc::new(crate::tls::certified_key(&identity)?))
    }

    #[test]
    fn only_a_different_certificate_starts_a_new_generation() -> Result<(), Box<dyn std::error::Error>> {
        let plugin = PluginCertificate::default();
        let first = certified("first")?;
        plugin.set(None);
        assert_eq!(plugin.generation(), 0, "still no certificate");
        plugin.set(Some(first.clone()));
        assert_eq!(plugin.generation(), 1);
        // The same certificate from another run of the plugin.
        plugin.set(Some(Arc::new(CertifiedKey::new(
            first.cert.clone(),
            first.key.clone(),
        ))));
        assert_eq!(plugin.generation(), 1);
        plugin.set(Some(certified("second")?));
        assert_eq!(plugin.generation(), 2);
        assert!(plugin.resolve(&[], &[]).is_some());
        plugin.set(None);
        assert_eq!(plugin.generation(), 3);
        assert!(plugin.resolve(&[], &[]).is_none());
        Ok(())
    }

    #[test]
    fn debug_shows_neither_certificate_nor_key() -> Result<(), Box<dyn std::error::Error>> {
        let plugin = PluginCertificate::default();
        plugin.set(Some(certified("someone")?));
        assert_eq!(
            format!("{plugin:?}"),
            "PluginCertificate { present: true, generation: 1 }"
        );
        Ok(())
    }
}
