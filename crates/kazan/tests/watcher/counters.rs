//! The counters a watcher keeps for dashboards (issue 21's watcher metrics): bytes read, Gones
//! met, and retries by cause, each checked against faults the test injects.

use k8s_openapi::api::core::v1::ConfigMap;
use kazan::{
    Request,
    watcher::{EventKind, RetryCauses, Watcher},
};
use kazan_apiserver::{FaultAction, FaultRule};

use super::{TestResult, WAIT, client, cm, server, support};

#[tokio::test]
async fn retries_are_counted_by_cause_bytes_as_read_and_gones_as_met() -> TestResult {
    let server = server().await?;
    let start = server.resource_version().to_string();
    server
        .faults()
        .add_rule(FaultRule::new(FaultAction::status(500, "InternalError", "broken")).watch(true));
    server.faults().add_rule(
        FaultRule::new(FaultAction::status(429, "TooManyRequests", "slow down").retry_after(0)).watch(true),
    );
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(start),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.create(cm("w", "a", "1"))?;
    let ev = super::next(&mut w).await?;
    assert!(matches!(ev.kind, EventKind::Added(_)));
    let stats = w.stats();
    assert_eq!(
        stats.retries_by_cause,
        RetryCauses {
            server_error: 1,
            throttled: 1,
            ..RetryCauses::default()
        }
    );
    assert_eq!(stats.retries, 2);
    assert!(stats.bytes_read > 0, "{stats:?}");

    // The history compacted past the watcher, then the watch ended: the resume meets 410.
    server.create(cm("w", "b", "1"))?;
    let _ = super::next(&mut w).await?;
    server.create(cm("w", "c", "1"))?;
    server.faults().compact_history();
    server.faults().end_watches(None);
    let mut gone = false;
    for _ in 0..5 {
        match super::next(&mut w).await {
            Ok(ev) if matches!(ev.kind, EventKind::Gone { .. }) => {
                gone = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(gone, "no Gone");
    assert_eq!(w.stats().gones, 1);
    Ok(())
}
