//! `kazan demo` runs to its end by itself and finds the consumer's cache equal to the server.

use crate::support;

use std::time::Duration;

use support::{Kazan, Result};

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_to_the_end_and_its_cache_matches_the_server() -> Result {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kazan"));
    command.arg("demo");
    let kazan = Kazan::spawn(command)?;
    let finished = tokio::time::timeout(Duration::from_secs(120), kazan.finish())
        .await
        .map_err(|_| "the demo did not end within 120 s")??;
    let out = &finished.stdout;
    assert_eq!(finished.code, Some(0), "{out}\n{}", finished.stderr);
    assert!(out.contains("\nfinal cache == server state: yes\n"), "{out}");
    // It ends with what it showed and the next commands to run.
    let ending: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("final cache == server state"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        ending
            .first()
            .is_some_and(|l| l.starts_with("What kubectl get -w does not do: ")),
        "{out}"
    );
    assert!(ending.iter().any(|l| l.starts_with("kazan serve ")), "{out}");
    assert!(
        ending
            .last()
            .is_some_and(|l| l.starts_with("kazan watch pods -A ")),
        "{out}"
    );
    // What it sets out to show, shown.
    for shown in [
        "watch ended by the server (timeoutSeconds=3)",
        "configmaps: watch failed (retry 1 of watcher-1)",
        "GONE      jobs from watcher-2: too old resource version",
        "listed jobs: 2 at rv",
        "while the watch was away: job-1 deleted, job-2 changed, job-3 created",
        "from watcher-3",
        "gone handled      1 (cache cleared, listed again, new watcher started)",
    ] {
        assert!(out.contains(shown), "missing {shown:?} in:\n{out}");
    }
    Ok(())
}
