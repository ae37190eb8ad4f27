//! The controller runtime: the work queue (on tokio's paused clock, so backoff is checked on
//! exact virtual times), the reconcile runner, and the batteries against the embedded API server.

use std::time::Duration;

use kazan::runtime::{ExponentialBackoff, MaxOf, ObjectKey, Priority, QueueOptions, TokenBucket, WorkQueue};
use tokio::time::Instant;

use crate::support::{TestError, TestResult};

#[path = "runtime/batteries.rs"]
mod batteries;
#[path = "runtime/controller.rs"]
mod controller;
#[path = "runtime/runner.rs"]
mod runner;

/// Generous bound for anything a test waits on (virtual time in paused tests).
const WAIT: Duration = Duration::from_secs(20);

fn key(name: &str) -> ObjectKey {
    ObjectKey::namespaced("ns", name)
}

/// The next leased key's name, or an error if none comes within `within`.
async fn next_name(queue: &WorkQueue, within: Duration) -> Result<kazan::runtime::Lease, String> {
    match tokio::time::timeout(within, queue.next()).await {
        Ok(Some(lease)) => Ok(lease),
        Ok(None) => Err("the queue shut down".into()),
        Err(_) => Err(format!("no key within {within:?}")),
    }
}

/// Whether `next` hands out anything within `within`.
async fn nothing_within(queue: &WorkQueue, within: Duration) -> bool {
    tokio::time::timeout(within, queue.next()).await.is_err()
}

fn backoff_only() -> QueueOptions {
    QueueOptions::default().rate_limiter(ExponentialBackoff::default())
}

#[tokio::test(start_paused = true)]
async fn a_key_added_many_times_waits_once() -> TestResult {
    let queue = WorkQueue::default();
    for _ in 0..3 {
        queue.add(key("a"));
    }
    queue.add(key("b"));
    assert_eq!(queue.stats().depth, 2);
    let a = next_name(&queue, WAIT).await?;
    let b = next_name(&queue, WAIT).await?;
    assert_eq!((a.key().name.as_str(), b.key().name.as_str()), ("a", "b"));
    a.forget();
    b.forget();
    assert!(nothing_within(&queue, WAIT).await);
    Ok(())
}

/// client-go `workqueue.Typed.Get/Done`: an item added while processing is marked dirty and
/// handed out again once, after `Done` (util/workqueue/queue.go).
#[tokio::test(start_paused = true)]
async fn a_key_added_during_its_lease_is_handed_out_once_after_the_lease_ends() -> TestResult {
    let queue = WorkQueue::new(QueueOptions::default().workers(4));
    queue.add(key("a"));
    let lease = next_name(&queue, WAIT).await?;
    for _ in 0..5 {
        queue.add(key("a"));
    }
    assert!(
        nothing_within(&queue, Duration::from_secs(1)).await,
        "a leased key was handed out a second time"
    );
    lease.forget();
    let again = next_name(&queue, WAIT).await?;
    assert_eq!(again.key(), &key("a"));
    again.forget();
    assert!(
        nothing_within(&queue, WAIT).await,
        "the five adds during the lease gave more than one more lease"
    );
    Ok(())
}

/// client-go `ItemExponentialFailureRateLimiter` (util/workqueue/default_rate_limiters.go): 5 ms
/// doubling per failure; `Forget` resets.
#[tokio::test(start_paused = true)]
async fn failures_back_off_from_5ms_doubling_and_a_success_resets_the_backoff() -> TestResult {
    let queue = WorkQueue::new(backoff_only());
    queue.add(key("a"));
    let mut delays = Vec::new();
    for _ in 0..4 {
        let lease = next_name(&queue, WAIT).await?;
        let failed_at = Instant::now();
        let delay = lease.retry();
        delays.push(delay);
        // Not a moment before the delay...
        if delay > Duration::from_millis(1) {
            assert!(nothing_within(&queue, delay - Duration::from_millis(1)).await);
        }
        // ...and at the delay.
        let lease = next_name(&queue, WAIT).await?;
        assert_eq!(Instant::now() - failed_at, delay);
        let d2 = lease.retry();
        delays.push(d2);
        tokio::time::sleep(d2).await;
    }
    assert_eq!(
        delays,
        [5, 10, 20, 40, 80, 160, 320, 640].map(Duration::from_millis)
    );
    assert_eq!(queue.retries(&key("a")), 8);
    let lease = next_name(&queue, WAIT).await?;
    lease.forget();
    assert_eq!(queue.retries(&key("a")), 0);
    queue.add(key("a"));
    let lease = next_name(&queue, WAIT).await?;
    assert_eq!(lease.retry(), Duration::from_millis(5));
    Ok(())
}

#[test]
fn the_backoff_is_capped_at_1000_seconds() {
    let backoff = ExponentialBackoff::default();
    assert_eq!(backoff.delay(1), Duration::from_millis(5));
    assert_eq!(
        backoff.delay(18),
        Duration::from_secs(655) + Duration::from_millis(360)
    );
    assert_eq!(backoff.delay(19), Duration::from_secs(1000));
    assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(1000));
}

/// kubernetes/kubernetes#132805: in client-go, an event that wakes a key before its backoff is
/// due and fails again doubles the delay although nobody waited for it. Here such a failure
/// keeps the count: the retry is scheduled at the same delay, and only a failure after a full
/// wait doubles it.
#[tokio::test(start_paused = true)]
async fn a_failure_after_an_early_wake_does_not_double_the_backoff() -> TestResult {
    let queue = WorkQueue::new(backoff_only());
    queue.add(key("a"));
    // Two failures that waited: 5 ms, then 10 ms scheduled.
    let lease = next_name(&queue, WAIT).await?;
    assert_eq!(lease.retry(), Duration::from_millis(5));
    let lease = next_name(&queue, WAIT).await?;
    assert_eq!(lease.retry(), Duration::from_millis(10));
    assert_eq!(queue.retries(&key("a")), 2);

    // A change wakes it after 1 ms, and it fails again, three times in a row.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        queue.add(key("a"));
        let early = next_name(&queue, Duration::ZERO).await?;
        assert_eq!(
            early.retry(),
            Duration::from_millis(10),
            "an early failure changed the delay"
        );
        assert_eq!(queue.retries(&key("a")), 2);
    }

    // Now it waits the full 10 ms and fails: that one counts.
    let waited = next_name(&queue, WAIT).await?;
    assert_eq!(waited.retry(), Duration::from_millis(20));
    assert_eq!(queue.retries(&key("a")), 3);
    Ok(())
}

/// client-go `BucketRateLimiter` inside `DefaultControllerRateLimiter`: retries of all keys share
/// one token bucket; the delay is the larger of the bucket's and the key's backoff.
#[tokio::test(start_paused = true)]
async fn the_token_bucket_limits_retries_across_keys() -> TestResult {
    let limiter = MaxOf(vec![
        Box::new(ExponentialBackoff::default()),
        Box::new(TokenBucket::new(1.0, 2)),
    ]);
    let queue = WorkQueue::new(QueueOptions::default().workers(3).rate_limiter(limiter));
    for name in ["a", "b", "c"] {
        queue.add(key(name));
    }
    let leases = [
        next_name(&queue, WAIT).await?,
        next_name(&queue, WAIT).await?,
        next_name(&queue, WAIT).await?,
    ];
    let delays: Vec<Duration> = leases.into_iter().map(|l| l.retry()).collect();
    assert_eq!(
        delays,
        [
            Duration::from_millis(5),
            Duration::from_millis(5),
            Duration::from_secs(1)
        ]
    );
    Ok(())
}

/// controller-runtime pkg/controller/priorityqueue: items from initial lists get a low priority
/// and are handed out after ready items of higher priority; adding again keeps the higher one.
#[tokio::test(start_paused = true)]
async fn keys_from_lists_run_after_live_changes() -> TestResult {
    let queue = WorkQueue::new(QueueOptions::default().workers(10));
    queue.add_with(key("listed-1"), Priority::Low);
    queue.add_with(key("listed-2"), Priority::Low);
    queue.add_with(key("listed-3"), Priority::Low);
    queue.add(key("live"));
    // A listed key that then changes live is promoted; a live key listed again stays normal.
    queue.add(key("listed-3"));
    queue.add_with(key("live"), Priority::Low);
    let mut order = Vec::new();
    for _ in 0..4 {
        let lease = next_name(&queue, WAIT).await?;
        order.push(lease.key().name.clone());
        lease.forget();
    }
    assert_eq!(order, ["listed-3", "live", "listed-1", "listed-2"]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn requeue_after_hands_the_key_out_at_the_earliest_time_asked() -> TestResult {
    let queue = WorkQueue::default();
    let start = Instant::now();
    queue.requeue_after(key("a"), Duration::from_secs(60));
    queue.requeue_after(key("a"), Duration::from_secs(10));
    queue.requeue_after(key("a"), Duration::from_secs(30));
    assert_eq!(queue.stats().delayed, 1);
    let lease = next_name(&queue, WAIT).await?;
    assert_eq!(Instant::now() - start, Duration::from_secs(10));
    lease.requeue_after(Duration::from_secs(5));
    let _again = next_name(&queue, WAIT).await?;
    assert_eq!(Instant::now() - start, Duration::from_secs(15));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn no_more_keys_are_leased_at_once_than_there_are_workers() -> TestResult {
    let queue = WorkQueue::new(QueueOptions::default().workers(2));
    for name in ["a", "b", "c"] {
        queue.add(key(name));
    }
    let a = next_name(&queue, WAIT).await?;
    let _b = next_name(&queue, WAIT).await?;
    assert!(nothing_within(&queue, WAIT).await);
    assert_eq!(queue.stats().leased, 2);
    a.forget();
    let c = next_name(&queue, WAIT).await?;
    assert_eq!(c.key(), &key("c"));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_queue_reports_depth_the_oldest_ready_age_and_retries_per_key() -> TestResult {
    let queue = WorkQueue::new(backoff_only().workers(1));
    assert_eq!(queue.stats().oldest_ready_age, None);
    queue.add(key("old"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    queue.add(key("new"));
    queue.requeue_after(key("later"), Duration::from_secs(100));
    let stats = queue.stats();
    assert_eq!((stats.depth, stats.delayed, stats.leased), (2, 1, 0));
    assert_eq!(stats.oldest_ready_age, Some(Duration::from_secs(3)));
    let old = next_name(&queue, WAIT).await?;
    old.retry();
    assert_eq!(queue.retries(&key("old")), 1);
    assert_eq!(queue.stats().oldest_ready_age, Some(Duration::ZERO));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_handing_out_waits_for_leases_and_reports_what_was_cut() -> TestResult {
    let queue = WorkQueue::new(QueueOptions::default().workers(3));
    for name in ["quick", "slow", "waiting"] {
        queue.add(key(name));
    }
    let quick = next_name(&queue, WAIT).await?;
    let slow = next_name(&queue, WAIT).await?;
    let finisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        quick.forget();
        tokio::time::sleep(Duration::from_secs(100)).await;
        slow.forget();
    });
    let report = queue.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.cut, vec![key("slow")]);
    assert_eq!(report.not_started, 1);
    assert!(
        queue.next().await.is_none(),
        "a key was handed out after shutdown"
    );
    finisher.abort();
    Ok(())
}

mod queue_model {
    //! Random sequences of queue operations against the two promises that matter most: a key is
    //! never leased twice at once, and every add is followed by a lease that starts after it.

    use std::{collections::HashSet, time::Duration};

    use kazan::runtime::{ExponentialBackoff, Lease, Priority, QueueOptions, WorkQueue};
    use proptest::prelude::*;

    use super::key;

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8, bool),
        RequeueAfter(u8, u16),
        TryNext,
        End(usize, u8, u16),
        Advance(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..4, any::<bool>()).prop_map(|(k, low)| Op::Add(k, low)),
            (0u8..4, 0u16..50).prop_map(|(k, ms)| Op::RequeueAfter(k, ms)),
            Just(Op::TryNext),
            Just(Op::TryNext),
            (0usize..4, 0u8..4, 0u16..50).prop_map(|(i, how, ms)| Op::End(i, how, ms)),
            (0u16..30).prop_map(Op::Advance),
        ]
    }

    fn end(lease: Lease, how: u8, ms: u16, pending: &mut HashSet<String>) {
        let name = lease.key().name.clone();
        match how {
            0 => lease.done(),
            1 => lease.forget(),
            2 => {
                lease.requeue_after(Duration::from_millis(ms.into()));
                pending.insert(name);
            }
            _ => {
                lease.retry();
                pending.insert(name);
            }
        }
    }

    fn run(ops: Vec<Op>, workers: usize) -> Result<(), TestCaseError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        rt.block_on(async move {
            let queue = WorkQueue::new(
                QueueOptions::default()
                    .workers(workers)
                    .rate_limiter(ExponentialBackoff::default()),
            );
            let mut leases: Vec<Lease> = Vec::new();
            // Keys added since their last lease began.
            let mut pending: HashSet<String> = HashSet::new();
            for op in ops {
                match op {
                    Op::Add(k, low) => {
                        let priority = if low { Priority::Low } else { Priority::Normal };
                        queue.add_with(key(&k.to_string()), priority);
                        pending.insert(k.to_string());
                    }
                    Op::RequeueAfter(k, ms) => {
                        queue.requeue_after(key(&k.to_string()), Duration::from_millis(ms.into()));
                        pending.insert(k.to_string());
                    }
                    Op::TryNext => {
                        if let Some(lease) = queue.try_next() {
                            let name = lease.key().name.clone();
                            prop_assert!(
                                leases.iter().all(|l| l.key().name != name),
                                "{name} leased twice at once"
                            );
                            prop_assert!(leases.len() < workers, "more leases than workers");
                            pending.remove(&name);
                            leases.push(lease);
                        }
                    }
                    Op::End(i, how, ms) => {
                        if i < leases.len() {
                            end(leases.swap_remove(i), how, ms, &mut pending);
                        }
                    }
                    Op::Advance(ms) => tokio::time::advance(Duration::from_millis(ms.into())).await,
                }
            }
            for lease in leases.drain(..) {
                lease.forget();
            }
            // Drain: every pending key comes out exactly once (no failure is left, so a key
            // forgotten now does not come back).
            let mut drained: Vec<String> = Vec::new();
            for _ in 0..100 {
                tokio::time::advance(Duration::from_secs(2000)).await;
                while let Some(lease) = queue.try_next() {
                    drained.push(lease.key().name.clone());
                    lease.forget();
                }
            }
            let unique: HashSet<String> = drained.iter().cloned().collect();
            prop_assert_eq!(unique.len(), drained.len(), "a key came out twice: {:?}", drained);
            prop_assert!(
                pending.is_subset(&unique),
                "added but never leased again: {:?} (drained {:?})",
                pending,
                drained
            );
            let stats = queue.stats();
            prop_assert_eq!((stats.depth, stats.delayed, stats.leased), (0, 0, 0));
            Ok(())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn random_operations_never_lease_a_key_twice_and_lose_no_add(
            ops in prop::collection::vec(op(), 0..80),
            workers in 1usize..4,
        ) {
            run(ops, workers)?;
        }
    }
}
