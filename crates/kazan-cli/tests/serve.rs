//! `kazan serve`, run as a binary: the kubeconfig it writes reaches it with any flags (a token
//! implies TLS, since kubectl sends credentials to HTTPS servers only), and it does not replace a
//! kubeconfig it did not write unless told to.

use crate::support;

use std::path::Path;

use support::{Kazan, Result};
use tokio::process::Command;

/// `kazan serve ARGS --addr 127.0.0.1:0 --write-kubeconfig PATH`.
fn serve(kubeconfig: &Path, args: &[&str]) -> Result<Kazan> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kazan"));
    command
        .arg("serve")
        .args(args)
        .args(["--addr", "127.0.0.1:0", "--write-kubeconfig"])
        .arg(kubeconfig);
    Kazan::spawn(command)
}

/// `kazan ARGS --kubeconfig PATH`, to its end.
async fn kazan(kubeconfig: &Path, args: &[&str]) -> Result<support::Finished> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kazan"));
    command.args(args).arg("--kubeconfig").arg(kubeconfig);
    Kazan::spawn(command)?.finish().await
}

/// `--tls` alone (issue 19, row 16): the kubeconfig's user still has a credential, a token
/// generated at start that the server requires, so kubectl does not prompt for a username.
#[tokio::test(flavor = "multi_thread")]
async fn tls_without_a_token_writes_a_generated_token_into_the_kubeconfig() -> Result {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kazan.kubeconfig");
    let mut server = serve(&kubeconfig, &["--tls"])?;
    let url = server.line().await?;
    assert!(url.starts_with("url: https://127.0.0.1:"), "{url}");
    server.line().await?;
    let written = std::fs::read_to_string(&kubeconfig)?;
    let token = written
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .map(|t| t.trim_matches('"').to_string())
        .ok_or("no token in the kubeconfig")?;
    assert_eq!(token.len(), 32, "{written}");
    let got = kazan(&kubeconfig, &["get", "ns", "-o", "name"]).await?;
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    // The server requires it: without it, 401.
    let stripped = dir.path().join("stripped.kubeconfig");
    std::fs::write(&stripped, written.replace(&token, "wrong"))?;
    let refused = kazan(&stripped, &["get", "ns", "-o", "name"]).await?;
    assert_ne!(refused.code, Some(0));
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);
    server.terminate().await?;
    let finished = server.finish().await?;
    assert!(!finished.stderr.contains(&token), "the token is not printed");
    Ok(())
}

/// A kubeconfig of another cluster, as a user may have at that path.
const FOREIGN: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster: {server: https://10.0.0.1:6443}\ncontexts: []\nusers:\n- name: admin\n  user: {token: keep-me}\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_token_implies_tls_so_kubectl_sends_it() -> Result {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kazan.kubeconfig");
    let mut server = serve(&kubeconfig, &["--token", "s3cret"])?;
    let url = server.line().await?;
    assert!(url.starts_with("url: https://127.0.0.1:"), "{url}");
    server.line().await?;
    let written = std::fs::read_to_string(&kubeconfig)?;
    assert!(written.contains("certificate-authority-data: "), "{written}");
    assert!(written.contains("token: \"s3cret\""), "{written}");
    let got = kazan(&kubeconfig, &["get", "ns", "-o", "name"]).await?;
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert!(got.stdout.contains("namespace/default"), "{}", got.stdout);
    server.terminate().await?;
    let finished = server.finish().await?;
    assert!(
        finished.stderr.starts_with(
            "kazan serve: --token implies --tls (kubectl sends credentials to HTTPS servers only)\n"
        ),
        "{}",
        finished.stderr
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kubeconfig_kazan_did_not_write_is_kept_unless_forced() -> Result {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("config");
    std::fs::write(&kubeconfig, FOREIGN)?;
    let refused = serve(&kubeconfig, &[])?.finish().await?;
    assert_eq!(refused.code, Some(1));
    assert_eq!(refused.stdout, "");
    assert_eq!(
        refused.stderr,
        format!(
            "kazan serve: {} exists and kazan serve did not write it: not replacing it (give --force to replace it, or --write-kubeconfig another path)\n",
            kubeconfig.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&kubeconfig)?, FOREIGN);

    let mut forced = serve(&kubeconfig, &["--force"])?;
    assert!(forced.line().await?.starts_with("url: http://127.0.0.1:"));
    let written = std::fs::read_to_string(&kubeconfig)?;
    assert!(written.starts_with("# Written by `kazan serve`"), "{written}");
    forced.terminate().await?;
    forced.finish().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kubeconfig_kazan_wrote_is_replaced_at_the_next_start() -> Result {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kazan.kubeconfig");
    let mut urls = Vec::new();
    for _ in 0..2 {
        let mut server = serve(&kubeconfig, &[])?;
        urls.push(server.line().await?);
        let written = std::fs::read_to_string(&kubeconfig)?;
        let url = urls
            .last()
            .map(|u| u.trim_start_matches("url: "))
            .unwrap_or_default();
        assert!(written.contains(&format!("server: {url}\n")), "{written}");
        server.terminate().await?;
        assert_eq!(server.finish().await?.code, Some(0));
    }
    assert_ne!(urls[0], urls[1]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_directory_is_not_created() -> Result {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("no/such/dir/kazan.kubeconfig");
    let refused = serve(&kubeconfig, &[])?.finish().await?;
    assert_eq!(refused.code, Some(1));
    assert_eq!(
        refused.stderr,
        format!(
            "kazan serve: cannot write the kubeconfig to {}: the directory {} does not exist\n",
            kubeconfig.display(),
            dir.path().join("no/such/dir").display()
        )
    );
    assert!(!dir.path().join("no").exists());
    Ok(())
}
