//! Checks that certificates and keys are usable PEM before the transport sees them, and decodes
//! kubeconfig `-data` fields. Faults are described by kind and position only: the bytes may be a
//! private key.

use base64::Engine as _;
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer,
    pem::{self, PemObject},
};

use crate::error::ClientSetupError;

/// Decodes a kubeconfig `-data` field. Like client-go, line breaks and spaces inside are ignored;
/// padding may be present or not.
pub(crate) fn decode_base64(data: &str) -> Result<Vec<u8>, String> {
    const ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let compact: Vec<u8> = data.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    ENGINE.decode(&compact).map_err(|e| match e {
        base64::DecodeError::InvalidByte(offset, _) => {
            format!("invalid character at position {offset} (whitespace ignored)")
        }
        base64::DecodeError::InvalidLength(_) => "invalid length".to_string(),
        base64::DecodeError::InvalidLastSymbol(offset, _) => {
            format!("invalid last character at position {offset} (whitespace ignored)")
        }
        base64::DecodeError::InvalidPadding => "invalid padding".to_string(),
    })
}

/// Checks that `pem` holds at least one certificate and no malformed PEM section.
pub(crate) fn check_certificates(pem: &[u8]) -> Result<(), String> {
    let mut found = 0usize;
    for item in CertificateDer::pem_slice_iter(pem) {
        item.map_err(describe)?;
        found += 1;
    }
    if found == 0 {
        return Err("no PEM `CERTIFICATE` block found".to_string());
    }
    Ok(())
}

/// Checks that `pem` holds a private key block: PKCS#1 RSA, SEC1 EC or PKCS#8.
pub(crate) fn check_private_key(pem: &[u8]) -> Result<(), String> {
    const ENCRYPTED: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(_) => Ok(()),
        Err(rustls_pki_types::pem::Error::NoItemsFound)
            if pem.windows(ENCRYPTED.len()).any(|w| w == ENCRYPTED) =>
        {
            Err("the private key is encrypted; a kubeconfig key must be unencrypted".to_string())
        }
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(
            "no PEM private key block found (expected `RSA PRIVATE KEY`, `EC PRIVATE KEY` or `PRIVATE KEY`)"
                .to_string(),
        ),
        Err(e) => Err(describe(e)),
    }
}

/// The kind of a PEM fault, without the offending bytes.
fn describe(e: rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { .. } => "a PEM section has no END line".to_string(),
        Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".to_string(),
        Error::Base64Decode(_) => "a PEM section holds invalid base64".to_string(),
        Error::NoItemsFound => "no PEM block found".to_string(),
        Error::SectionTooLarge => "a PEM section is too large".to_string(),
        _ => "malformed PEM".to_string(),
    }
}

/// Every `CERTIFICATE` block of a PEM bundle; at least one.
pub(crate) fn certificates(
    pem: &[u8],
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ClientSetupError> {
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
pub(crate) fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, ClientSetupError> {
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
}
