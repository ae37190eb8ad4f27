//! What the tests of every kazan crate share, once: the bound on every wait, test results that
//! cross tasks, base64 as kubeconfigs and Secrets hold it, query parameters, scraped metrics,
//! the fuzz targets' settings and the throw-away PKI. Each crate's own test-support module (`tests/support`, `tests/common`)
//! re-exports these and adds only what is its own (servers, the CLI runner, the byte-level HTTP
//! client), as rustls and h2 keep one test-support crate beside their integration tests.

use std::{future::Future, path::PathBuf, time::Duration};

/// Any error a test may meet; `Send + Sync` so that it crosses spawned tasks.
pub type TestError = Box<dyn std::error::Error + Send + Sync>;

/// What a test (or one of its helpers) returns.
pub type TestResult<T = ()> = Result<T, TestError>;

/// The bound of anything a test waits on in real time. Generous: never an assertion on speed,
/// only the point at which a test that has hung fails instead of hanging the run (a loaded CI
/// machine starting the `kazan` binary needs the margin).
pub const WAIT: Duration = Duration::from_secs(30);

/// `fut`, or an error if it has not finished within [`WAIT`].
pub async fn bounded<T>(fut: impl Future<Output = T>) -> Result<T, TestError> {
    Ok(tokio::time::timeout(WAIT, fut).await?)
}

/// Standard base64, as kubeconfig `-data` fields and Secrets hold it.
pub fn b64(data: impl AsRef<[u8]>) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A query parameter's (still percent-encoded) value in `query` (`a=1&b=2`, no `?`).
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| v.to_string())
    })
}

/// Metrics in the Prometheus text format, parsed as a Prometheus server would: what a scrape
/// test asserts on.
pub fn parse_metrics(text: &str) -> std::io::Result<prometheus_parse::Scrape> {
    prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_string())))
}

/// The settings of a property test (fuzz target): `default_cases` cases, unless `PROPTEST_CASES`
/// asks for another number (a longer run by hand or in a soak).
pub fn fuzz_config(default_cases: u32) -> proptest::test_runner::Config {
    let mut config = proptest::test_runner::Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    config
}

/// The throw-away PKI of the tests (`pki/README.md` says how each file was made): a CA with
/// client certificates, and the private-key encodings a client must read. They protect nothing.
pub mod pki {
    use super::PathBuf;

    /// The path of a file of the PKI (`ca.crt`, `client-ec.key`...), for a kubeconfig that names
    /// files rather than holding their data.
    pub fn path(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pki").join(name)
    }

    /// The text of a file of the PKI.
    pub fn text(name: &str) -> std::io::Result<String> {
        std::fs::read_to_string(path(name))
    }

    /// An RSA key in PKCS#1 (`RSA PRIVATE KEY`), the same key as [`RSA_PKCS8`].
    pub const RSA_PKCS1: &str = include_str!("../pki/rsa-pkcs1.pem");
    /// [`RSA_PKCS1`] in PKCS#8, which rcgen can sign a certificate for.
    pub const RSA_PKCS8: &str = include_str!("../pki/rsa-pkcs8.pem");
    /// A P-256 key in SEC1 (`EC PRIVATE KEY`), the same key as [`EC_PKCS8`].
    pub const EC_SEC1: &str = include_str!("../pki/ec-sec1.pem");
    /// [`EC_SEC1`] in PKCS#8.
    pub const EC_PKCS8: &str = include_str!("../pki/ec-pkcs8.pem");
}
