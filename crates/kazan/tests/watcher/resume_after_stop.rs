//! A stopped watcher's reported resume version skips nothing (issue 24's bug): whatever the form,
//! with the consumer behind and a full channel when `stop()` arrives, a new watcher started from
//! the version the old one reports (its `stats()`, its end reason) delivers every later event
//! exactly once.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kazan::{
    Request,
    watcher::{EndReason, Event, EventKind, WatchStream, Watcher, WatcherHandle},
};
use kazan_apiserver::ApiServer;

use super::{TestResult, WAIT, client, cm, server, support};

/// How many ConfigMaps each test writes while the consumer is behind.
const WRITES: usize = 6;

/// The name of a ConfigMap event's object, or what kind of event it was.
fn name_of(ev: &Event<ConfigMap>) -> String {
    match ev.object() {
        Some(o) => o.metadata.name.clone().unwrap_or_default(),
        None => format!("<{}>", ev.event_type()),
    }
}

/// Writes `WRITES` ConfigMaps named `prefix-0`.. and returns their names in order.
fn write_configmaps(server: &ApiServer, prefix: &str) -> Result<Vec<String>, super::TestError> {
    let mut names = Vec::new();
    for i in 0..WRITES {
        let name = format!("{prefix}-{i}");
        server.create(cm("w", &name, "1"))?;
        names.push(name);
    }
    Ok(names)
}

/// Waits (bounded) until the watcher has read `lines` event lines off the socket: then it holds
/// events its consumer has not taken.
async fn until_read<M: Send + 'static>(w: &WatcherHandle<M>, lines: u64) -> TestResult {
    let deadline = tokio::time::Instant::now() + WAIT;
    while w.stats().lines_read < lines {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("read {} of {lines} lines", w.stats().lines_read).into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Starts a watcher from `rv` and returns the names of the first `n` object events it delivers
/// (then waits a little longer to catch a repeat).
async fn names_from(server: &ApiServer, rv: &str, n: usize) -> Result<Vec<String>, super::TestError> {
    let mut w = Watcher::start(
        client(server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(rv),
    )?;
    let mut names = Vec::new();
    while names.len() < n {
        match tokio::time::timeout(WAIT, w.recv()).await {
            Ok(Some(ev)) => names.push(name_of(&ev)),
            Ok(None) => break,
            Err(_) => return Err(format!("the restarted watcher gave only {names:?}").into()),
        }
    }
    // Anything beyond what was written would be a repeat.
    if let Ok(Some(ev)) = tokio::time::timeout(std::time::Duration::from_millis(200), w.recv()).await {
        names.push(name_of(&ev));
    }
    w.stop().await;
    Ok(names)
}

/// What the first watcher's consumer got, then what the restarted one got, is every write once.
fn assert_exactly_once(before: &[String], after: &[String], written: &[String]) {
    let mut all = before.to_vec();
    all.extend_from_slice(after);
    assert_eq!(
        all, written,
        "before the stop {before:?}, after the restart {after:?}"
    );
}

/// Reads the handle's channel to its end (what `stop` left in it).
async fn drain(w: &mut WatcherHandle<Event<ConfigMap>>) -> Result<Vec<String>, super::TestError> {
    let mut names = Vec::new();
    for _ in 0..=WRITES {
        match tokio::time::timeout(WAIT, w.recv()).await? {
            Some(ev) => names.push(name_of(&ev)),
            None => return Ok(names),
        }
    }
    Err("the channel did not end after the stop".into())
}

#[tokio::test]
async fn the_spawned_form_reports_a_resume_version_that_skips_nothing_after_stop() -> TestResult {
    let server = server().await?;
    let start = server.resource_version().to_string();
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options()
            .resource_version(start)
            .channel_capacity(1),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    let written = write_configmaps(&server, "own")?;
    let mut got = vec![name_of(&super::next(&mut w).await?)];
    until_read(&w, WRITES as u64).await?;

    // One event in the channel, one held by the task for the full channel, the rest read ahead.
    w.stop().await;
    got.extend(drain(&mut w).await?);
    let stats = w.stats();
    let reason = w.wait().await;
    let rv = stats.resource_version.clone().ok_or("no resume version")?;
    assert_eq!(reason.resume_from(), Some(rv.as_str()), "{reason:?}");
    assert!(matches!(reason, EndReason::Stopped { .. }), "{reason:?}");
    assert_eq!(stats.events, got.len() as u64, "events counts what was delivered");

    let after = names_from(&server, &rv, WRITES - got.len()).await?;
    assert_exactly_once(&got, &after, &written);
    Ok(())
}

#[tokio::test]
async fn a_send_to_watcher_reports_a_resume_version_that_skips_nothing_after_stop() -> TestResult {
    let server = server().await?;
    let start = server.resource_version().to_string();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Event<ConfigMap>>(1);
    let w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options()
            .resource_version(start)
            .send_to(tx),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    let written = write_configmaps(&server, "sent")?;
    let first = tokio::time::timeout(WAIT, rx.recv()).await?.ok_or("closed")?;
    let mut got = vec![name_of(&first)];
    until_read(&w, WRITES as u64).await?;

    w.stop().await;
    // The sender went with the task: the receiver gives what was queued, then ends.
    while let Some(ev) = tokio::time::timeout(WAIT, rx.recv()).await? {
        got.push(name_of(&ev));
    }
    let reason = w.wait().await;
    let rv = reason.resume_from().ok_or("no resume version")?.to_string();
    assert_eq!(w.stats().resource_version.as_deref(), Some(rv.as_str()));
    assert!(
        got.len() < WRITES,
        "the stop came too late to test anything: {got:?}"
    );

    let after = names_from(&server, &rv, WRITES - got.len()).await?;
    assert_exactly_once(&got, &after, &written);
    Ok(())
}

#[tokio::test]
async fn the_stream_form_reports_the_version_of_what_it_yielded() -> TestResult {
    let server = server().await?;
    let start = server.resource_version().to_string();
    let written = write_configmaps(&server, "streamed")?;
    // All the events wait on the server; the stream reads them together and yields one by one.
    let mut stream: WatchStream<ConfigMap> = Watcher::stream(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(start),
    )?;
    let mut got = Vec::new();
    for _ in 0..2 {
        let ev = tokio::time::timeout(WAIT, stream.next()).await?.ok_or("ended")?;
        got.push(name_of(&ev));
    }
    let stats = stream.stats();
    drop(stream);
    assert_eq!(stats.events, 2);
    let rv = stats.resource_version.ok_or("no resume version")?;

    let after = names_from(&server, &rv, WRITES - got.len()).await?;
    assert_exactly_once(&got, &after, &written);
    Ok(())
}

#[tokio::test]
async fn the_supervised_form_counts_its_list_and_resumes_after_stop_without_a_gap() -> TestResult {
    let server = server().await?;
    server.create(cm("w", "listed-a", "1"))?;
    server.create(cm("w", "listed-b", "1"))?;
    let mut w = Watcher::supervise(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().channel_capacity(1),
    )?;
    // The list: two Added, then Synced. Until Synced is handed over, there is nothing to resume
    // from but a new list.
    let mut listed = Vec::new();
    loop {
        let ev = super::next(&mut w).await?;
        if matches!(ev.kind, EventKind::Synced) {
            break;
        }
        listed.push(name_of(&ev));
    }
    assert_eq!(listed, ["listed-a", "listed-b"]);
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    let written = write_configmaps(&server, "watched")?;
    let mut got = vec![name_of(&super::next(&mut w).await?)];
    until_read(&w, WRITES as u64).await?;

    w.stop().await;
    got.extend(drain(&mut w).await?);
    let stats = w.stats();
    assert_eq!(
        stats.events,
        (listed.len() + got.len()) as u64,
        "the initial list's objects count as events"
    );
    let rv = stats.resource_version.ok_or("no resume version")?;

    let after = names_from(&server, &rv, WRITES - got.len()).await?;
    assert_exactly_once(&got, &after, &written);
    Ok(())
}

#[tokio::test]
async fn a_watcher_stopped_in_its_initial_list_has_no_version_to_resume_from() -> TestResult {
    let server = server().await?;
    for i in 0..5 {
        server.create(cm("w", &format!("c{i}"), "1"))?;
    }
    let mut w = Watcher::supervise(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().channel_capacity(1).page_size(2),
    )?;
    let first = super::next(&mut w).await?;
    assert!(matches!(first.kind, EventKind::Added(_)));
    w.stop().await;
    // A list cannot be resumed in the middle: the objects not yet listed would be lost.
    assert_eq!(w.stats().resource_version, None);
    assert_eq!(w.wait().await.resume_from(), None);
    Ok(())
}
