//! `kazan lease`: who holds which `coordination.k8s.io/v1` Lease, as a leader election (client-go's
//! or kazan's) writes it: holder, last renewal, when it looks expired, how often it changed hands.
//! With `--prefix`, the Leases of a sharded watch (`kazan watch --shards N --shard-lease NAME`):
//! its slots `NAME-0..` and its members `NAME-member-*`.

use std::process::ExitCode;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kazan::{Request, lease::LeaseStatus};

use crate::{
    cluster::{Cluster, ClusterArgs},
    error::CliError,
    logging,
    terminal::emit,
};

const EXAMPLES: &str = "\
Examples:
  # Who leads kube-controller-manager
  kazan lease kube-controller-manager -n kube-system

  # The slots and members of a sharded watch (kazan watch ... --shards 6 --shard-lease cm-workers)
  kazan lease --prefix cm-workers

  # Every Lease of every namespace
  kazan lease -A

RENEWED is the holder's last renewTime, EXPIRES when renewTime + leaseDurationSeconds passes,
both read against this machine's clock: a hint, since the holder's clock may differ (electors
judge expiry by how long they saw no change, never by these times). A HOLDER of <none> is a
released Lease: any candidate may take it at once.";

/// Arguments of `kazan lease`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct LeaseArgs {
    /// One Lease by name [default: every Lease of the namespace].
    #[arg(value_name = "NAME")]
    name: Option<String>,

    /// Only the Leases whose names start with PREFIX: with a sharded watch's --shard-lease NAME,
    /// its slot Leases (NAME-0, NAME-1, ...) and member Leases (NAME-member-ID).
    #[arg(long, value_name = "PREFIX", conflicts_with = "name")]
    prefix: Option<String>,

    /// Leave the header line out.
    #[arg(long)]
    no_headers: bool,

    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Runs `kazan lease`.
pub async fn run(args: LeaseArgs) -> ExitCode {
    logging::init(args.cluster.log_level);
    match show(&args).await {
        Ok(code) => code,
        Err(CliError::StdoutClosed) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn show(args: &LeaseArgs) -> Result<ExitCode, CliError> {
    let cluster = Cluster::connect(&args.cluster)?;
    let all = cluster.all_namespaces && args.name.is_none();
    let where_ = match all {
        true => "in all namespaces".to_string(),
        false => format!("in namespace \"{}\"", cluster.namespace),
    };
    let leases: Vec<Lease> = match &args.name {
        Some(name) => {
            let request = Request::get::<Lease>(name).namespace(&cluster.namespace);
            let lease = cluster
                .client
                .run(&request)
                .await
                .map_err(|source| CliError::Request {
                    what: format!("getting lease \"{name}\" {where_}"),
                    source: Box::new(source),
                })?;
            vec![lease]
        }
        None => {
            let request = match all {
                true => Request::list::<Lease>().all_namespaces(),
                false => Request::list::<Lease>().namespace(&cluster.namespace),
            };
            let list = cluster
                .client
                .run(&request)
                .await
                .map_err(|source| CliError::Request {
                    what: format!("listing leases {where_}"),
                    source: Box::new(source),
                })?;
            list.items
                .into_iter()
                .filter(|l| {
                    args.prefix
                        .as_deref()
                        .is_none_or(|p| l.metadata.name.as_deref().unwrap_or_default().starts_with(p))
                })
                .collect()
        }
    };
    if leases.is_empty() && args.name.is_none() {
        let what = match &args.prefix {
            Some(prefix) => format!("no leases named {prefix}* {where_}"),
            None => format!("no leases {where_}"),
        };
        eprintln!("kazan: {what}");
        return Ok(ExitCode::SUCCESS);
    }
    emit(&table(&leases, all, Timestamp::now(), args.no_headers))?;
    Ok(ExitCode::SUCCESS)
}

/// The table: one row per Lease, in slot order for a sharded watch's Leases (`NAME-2` before
/// `NAME-10`).
fn table(leases: &[Lease], namespaces: bool, now: Timestamp, no_headers: bool) -> String {
    let mut headers = vec![
        "NAME",
        "HOLDER",
        "RENEWED",
        "EXPIRES",
        "DURATION",
        "TRANSITIONS",
        "ACQUIRED",
    ];
    if namespaces {
        headers.insert(0, "NAMESPACE");
    }
    let mut sorted: Vec<&Lease> = leases.iter().collect();
    sorted.sort_by_key(|l| {
        let name = l.metadata.name.clone().unwrap_or_default();
        (l.metadata.namespace.clone().unwrap_or_default(), natural(&name))
    });
    let rows: Vec<Vec<String>> = sorted
        .into_iter()
        .map(|lease| {
            let mut row = row(lease, now);
            if namespaces {
                row.insert(0, lease.metadata.namespace.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    columns_text(&headers, &rows, no_headers)
}

/// Rows under headers, each column as wide as its widest cell plus three spaces (as kubectl).
fn columns_text(headers: &[&str], rows: &[Vec<String>], no_headers: bool) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}", width = w + 3));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = String::new();
    if !no_headers {
        out.push_str(&line(&mut headers.iter().copied()));
    }
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// kubectl's short durations: `45s`, `2m5s`, `15m`, `3h20m`, `3d4h`.
fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..600 if s % 60 != 0 => format!("{}m{}s", s / 60, s % 60),
        120..10_800 => format!("{}m", s / 60),
        10_800..172_800 if s / 60 % 60 != 0 => format!("{}h{}m", s / 3600, s / 60 % 60),
        10_800..172_800 => format!("{}h", s / 3600),
        _ if s / 3600 % 24 != 0 => format!("{}d{}h", s / 86_400, s / 3600 % 24),
        _ => format!("{}d", s / 86_400),
    }
}

/// A name split into its text before a trailing number and that number, so that slots sort by
/// number.
fn natural(name: &str) -> (String, u64) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (text, number) = name.split_at(name.len() - digits);
    match number.parse::<u64>() {
        Ok(n) => (text.to_string(), n),
        Err(_) => (name.to_string(), 0),
    }
}

fn row(lease: &Lease, now: Timestamp) -> Vec<String> {
    let status = LeaseStatus::of(lease);
    let ago = |t: Option<Timestamp>| match t {
        Some(t) => format!("{} ago", human_duration(now.duration_since(t).as_secs())),
        None => "<none>".to_string(),
    };
    let expires = match (&status.holder, status.renew_time) {
        (None, _) => "released".to_string(),
        (Some(_), None) => "<unknown>".to_string(),
        (Some(_), Some(renewed)) => {
            let left = renewed.as_second() + i64::from(status.lease_duration_seconds) - now.as_second();
            match left {
                l if l > 0 => format!("in {}", human_duration(l)),
                l => format!("expired {} ago", human_duration(-l)),
            }
        }
    };
    vec![
        lease.metadata.name.clone().unwrap_or_default(),
        status.holder.clone().unwrap_or_else(|| "<none>".to_string()),
        ago(status.renew_time),
        expires,
        format!("{}s", status.lease_duration_seconds),
        status.transitions.to_string(),
        ago(status.acquire_time),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(name: &str, holder: &str, renewed: &str, seconds: i32) -> Result<Lease, serde_json::Error> {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds,
                     "acquireTime": "2026-12-06T08:00:00.000000Z", "renewTime": renewed,
                     "leaseTransitions": 3},
        }))
    }

    #[test]
    fn a_table_shows_holder_renewal_expiry_and_transitions_in_slot_order()
    -> Result<(), Box<dyn std::error::Error>> {
        let now: Timestamp = "2026-12-06T08:01:00Z".parse()?;
        let leases = [
            lease("w-10", "b", "2026-12-06T08:00:55.000000Z", 15)?,
            lease("w-2", "a", "2026-12-06T08:00:30.000000Z", 15)?,
            lease("w-member-a", "", "2026-12-06T08:00:59.000000Z", 1)?,
        ];
        let text = table(&leases, false, now, false);
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            lines[0],
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
        assert_eq!(
            lines[1],
            [
                "w-2", "a", "30s", "ago", "expired", "15s", "ago", "15s", "3", "60s", "ago"
            ]
        );
        assert_eq!(
            lines[2],
            ["w-10", "b", "5s", "ago", "in", "10s", "15s", "3", "60s", "ago"]
        );
        assert_eq!(
            lines[3],
            [
                "w-member-a",
                "<none>",
                "1s",
                "ago",
                "released",
                "1s",
                "3",
                "60s",
                "ago"
            ]
        );
        Ok(())
    }
}
