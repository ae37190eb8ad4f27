//! One impersonation whose headers need every rule (several groups, extras whose key needs
//! escaping), and the headers it must send: shared by the config and client tests.

use kazan::config::Impersonation;

/// Jane, with a uid, two groups, and extras whose key needs escaping (`/` and a space).
pub fn as_jane() -> Impersonation {
    Impersonation::user("jane")
        .with_uid("1001")
        .with_group("devs")
        .with_group("system:authenticated")
        .with_extra("example.com/team name", "blue")
        .with_extra("example.com/team name", "green")
        .with_extra("reason", "incident 42")
}

/// The `Impersonate-*` headers `as_jane` sends, as the server receives them: extra keys escaped
/// as client-go escapes them, names lower-cased.
pub fn jane_headers() -> Vec<(String, String)> {
    [
        ("impersonate-user", "jane"),
        ("impersonate-uid", "1001"),
        ("impersonate-group", "devs"),
        ("impersonate-group", "system:authenticated"),
        ("impersonate-extra-example.com%2fteam%20name", "blue"),
        ("impersonate-extra-example.com%2fteam%20name", "green"),
        ("impersonate-extra-reason", "incident 42"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect()
}
