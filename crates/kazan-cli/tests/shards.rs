//! `kazan watch --shards N --shard-lease NAME` and `kazan lease` (issue 20): replicas share the
//! objects through slot Leases, print each object once between them while both run, and one takes
//! the other's slots over (listing them) when it stops; `kazan lease` shows who holds what. The
//! Leases follow client-go's leader election (tools/leaderelection/leaderelection.go,
//! resourcelock/leaselock.go); the slots' lists and watches send KEP-5866's shardSelector.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::support::{Cluster, Kazan, Result};

const FAST: [&str; 6] = [
    "--lease-duration",
    "2s",
    "--renew-deadline",
    "1s",
    "--retry-period",
    "200ms",
];

fn replica(cluster: &Cluster, identity: &str) -> Result<Kazan> {
    let mut args = vec![
        "watch",
        "cm",
        "-n",
        "w",
        "-o",
        "name",
        "--shards",
        "4",
        "--shard-lease",
        "cmw",
        "--lease-identity",
        identity,
    ];
    args.extend(FAST);
    cluster.kazan(&args)
}

/// `kazan lease --prefix cmw -n w`, as name → holder.
async fn holders(cluster: &Cluster) -> Result<BTreeMap<String, String>> {
    let shown = cluster.run(&["lease", "--prefix", "cmw", "-n", "w"]).await?;
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);
    let mut lines = shown.stdout.lines();
    let header: Vec<&str> = lines.next().ok_or("no header")?.split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "HOLDER",
            "RENEWED",
            "EXPIRES",
            "DURATION",
            "TRANSITIONS",
            "ACQUIRED"
        ]
    );
    Ok(lines
        .filter_map(|l| {
            let mut cells = l.split_whitespace();
            Some((cells.next()?.to_string(), cells.next()?.to_string()))
        })
        .collect())
}

/// Reads lines from both replicas until every one of `names` was printed (bounded: each read has
/// the support's deadline, and there are at most 200 reads); returns who printed what.
async fn until_printed(
    a: &mut Kazan,
    b: &mut Kazan,
    names: &BTreeSet<String>,
) -> Result<(Vec<String>, Vec<String>)> {
    let (mut by_a, mut by_b) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let seen: BTreeSet<&String> = by_a.iter().chain(&by_b).collect();
        if names.iter().all(|n| seen.contains(n)) {
            return Ok((by_a, by_b));
        }
        tokio::select! {
            line = a.line() => by_a.push(line?),
            line = b.line() => by_b.push(line?),
        }
    }
    Err(format!("not every name printed: a {by_a:?}, b {by_b:?}").into())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_print_each_object_once_between_them_and_one_takes_over_when_the_other_stops() -> Result
{
    let cluster = Cluster::start().await?;
    for i in 0..8 {
        cluster.configmap(&format!("c{i}"), json!({}))?;
    }
    let mut a = replica(&cluster, "a")?;
    a.stderr_line("acquired slot").await?;
    let mut b = replica(&cluster, "b")?;
    // b joins: a sheds two slots, b wins them (and lists them).
    b.stderr_line("acquired slot").await?;
    b.stderr_line("acquired slot").await?;

    let slots = holders(&cluster).await?;
    let held: Vec<&str> = (0..4)
        .map(|i| slots.get(&format!("cmw-{i}")).map_or("", String::as_str))
        .collect();
    assert_eq!(held.iter().filter(|h| **h == "a").count(), 2, "{slots:?}");
    assert_eq!(held.iter().filter(|h| **h == "b").count(), 2, "{slots:?}");
    assert_eq!(slots.get("cmw-member-a").map(String::as_str), Some("a"));
    assert_eq!(slots.get("cmw-member-b").map(String::as_str), Some("b"));

    // While both run, each new object is printed by one of them only.
    let mut names = BTreeSet::new();
    for i in 0..12 {
        cluster.configmap(&format!("p{i:02}"), json!({}))?;
        names.insert(format!("ADDED configmap/p{i:02}"));
    }
    let (by_a, by_b) = until_printed(&mut a, &mut b, &names).await?;
    let printed_a: BTreeSet<&String> = by_a.iter().filter(|l| names.contains(*l)).collect();
    let printed_b: BTreeSet<&String> = by_b.iter().filter(|l| names.contains(*l)).collect();
    assert!(
        printed_a.is_disjoint(&printed_b),
        "printed by both: {:?}",
        printed_a.intersection(&printed_b).collect::<Vec<_>>()
    );
    assert!(
        !printed_a.is_empty() && !printed_b.is_empty(),
        "a: {by_a:?}, b: {by_b:?}"
    );

    // a stops: its slots are released, b wins them at once and lists them.
    a.terminate().await?;
    b.stderr_line("acquired slot").await?;
    b.stderr_line("acquired slot").await?;
    let after = a.finish().await?;
    assert_eq!(after.code, Some(0), "{}", after.stderr);
    assert_eq!(after.stderr.matches("lost slot").count(), 2, "{}", after.stderr);
    assert!(after.stderr.contains("releasing slots"), "{}", after.stderr);
    let slots = holders(&cluster).await?;
    for i in 0..4 {
        assert_eq!(
            slots.get(&format!("cmw-{i}")).map(String::as_str),
            Some("b"),
            "{slots:?}"
        );
    }
    assert_eq!(slots.get("cmw-member-a").map(String::as_str), Some("<none>"));

    // b prints what a printed before (its list of a's slots) and everything new.
    let mut later = BTreeSet::new();
    for i in 0..6 {
        cluster.configmap(&format!("q{i}"), json!({}))?;
        later.insert(format!("ADDED configmap/q{i}"));
    }
    let mut seen = BTreeSet::new();
    for _ in 0..100 {
        if later.is_subset(&seen) && printed_a.iter().all(|l| seen.contains(*l)) {
            break;
        }
        seen.insert(b.line().await?);
    }
    assert!(later.is_subset(&seen), "b did not print {later:?}: {seen:?}");
    assert!(
        printed_a.iter().all(|l| seen.contains(*l)),
        "b did not list a's objects: {seen:?}"
    );
    b.terminate().await?;
    assert_eq!(b.finish().await?.code, Some(0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn lease_shows_one_lease_refuses_a_missing_one_and_shards_needs_a_lease_name() -> Result {
    let cluster = Cluster::start().await?;
    cluster.server.create(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "kube-controller-manager", "namespace": "w"},
        "spec": {"holderIdentity": "cp-1_4b1c", "leaseDurationSeconds": 15,
                 "acquireTime": "2026-12-06T08:00:00.000000Z", "renewTime": "2026-12-06T08:00:00.000000Z",
                 "leaseTransitions": 7},
    }))?;
    let shown = cluster
        .run(&["lease", "kube-controller-manager", "-n", "w"])
        .await?;
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);
    let row: Vec<&str> = shown
        .stdout
        .lines()
        .nth(1)
        .ok_or("no row")?
        .split_whitespace()
        .collect();
    assert_eq!(&row[..2], ["kube-controller-manager", "cp-1_4b1c"]);
    // RENEWED .. ago, EXPIRES: expired .. ago (renewed long before now), DURATION, TRANSITIONS.
    assert_eq!(row[4], "expired", "{row:?}");
    assert_eq!(&row[row.len() - 4..row.len() - 2], ["15s", "7"], "{row:?}");

    let missing = cluster.run(&["lease", "nobody", "-n", "w"]).await?;
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("lease \"nobody\""), "{}", missing.stderr);
    assert!(missing.stderr.contains("not found"), "{}", missing.stderr);

    let refused = cluster.run(&["watch", "cm", "-n", "w", "--shards", "3"]).await?;
    assert_ne!(refused.code, Some(0));
    assert!(refused.stderr.contains("--shard-lease"), "{}", refused.stderr);
    let both = cluster
        .run(&[
            "watch",
            "cm",
            "--shards",
            "3",
            "--shard-lease",
            "x",
            "--shard",
            "0/2",
        ])
        .await?;
    assert_ne!(both.code, Some(0));
    assert!(both.stderr.contains("cannot be used with"), "{}", both.stderr);
    Ok(())
}
