//! An informer's list streamed (watch-list, KEP-3157) or paginated: the same store either way,
//! and the relist after a 410 streamed too, never asking for initial events on a resumed watch.
//!
//! Followed: client-go `tools/cache/reflector.go` (`watchList`, `ListAndWatchWithContext`'s
//! fallback to a list).

use kazan::watcher::InitialList;
use kazan_apiserver::ApiServer;

use super::{
    CM_PATH, TestResult, WAIT, cm, converged, is_watch_list, lists, options, server, set_value, start,
    store_state, while_away,
};

/// Seven ConfigMaps, one changed and one deleted, so versions are not in name order.
fn populate(server: &ApiServer) -> TestResult {
    for i in 0..7 {
        server.create(cm("w", &format!("item-{i}"), "1"))?;
    }
    set_value(server, "item-2", "2")?;
    server.delete("v1", "ConfigMap", Some("w"), "item-4")?;
    Ok(())
}

#[tokio::test]
async fn a_streamed_list_gives_the_same_store_as_a_paginated_one() -> TestResult {
    let server = server().await?;
    populate(&server)?;
    let streamed = start(&server, options().initial_list(InitialList::Streaming))?;
    let paginated = start(
        &server,
        options()
            .watcher(super::support::fast_watcher_options().page_size(2))
            .initial_list(InitialList::Paginated),
    )?;
    tokio::time::timeout(WAIT, streamed.store().wait_synced()).await??;
    tokio::time::timeout(WAIT, paginated.store().wait_synced()).await??;
    assert_eq!(store_state(&streamed.store()), store_state(&paginated.store()));
    assert_eq!(store_state(&streamed.store()).len(), 6);
    assert_eq!(
        streamed.store().resource_version(),
        Some(server.resource_version().to_string())
    );
    converged(&streamed.store(), &server).await?;
    let journal = server.journal();
    let watch_lists = journal
        .iter()
        .filter(|e| e.path == CM_PATH && is_watch_list(e))
        .count();
    assert_eq!(watch_lists, 1, "one informer streamed, the other paged");
    Ok(())
}

#[tokio::test]
async fn an_informers_relist_after_gone_is_streamed_and_its_resumed_watches_ask_no_initial_events()
-> TestResult {
    let server = server().await?;
    populate(&server)?;
    let informer = start(&server, options())?;
    let store = informer.store();
    tokio::time::timeout(WAIT, store.wait_synced()).await??;
    assert_eq!(lists(&server), 1);
    while_away(&server, |server| {
        server.delete("v1", "ConfigMap", Some("w"), "item-1")?;
        server.create(cm("w", "late", "1"))?;
        Ok(())
    })
    .await?;
    converged(&store, &server).await?;
    server.create(cm("w", "later", "1"))?;
    converged(&store, &server).await?;
    let journal = server.journal();
    let watches: Vec<_> = journal.iter().filter(|e| e.watch && e.path == CM_PATH).collect();
    // The first list and the relist were streamed; every other watch resumed without initial events.
    assert_eq!(lists(&server), 2, "{watches:?}");
    assert_eq!(watches.iter().filter(|e| is_watch_list(e)).count(), 2);
    assert!(
        journal.iter().all(|e| e.path != CM_PATH || e.watch),
        "no list request"
    );
    Ok(())
}

/// Against a server without the WatchList feature (422 to `sendInitialEvents`), the first list
/// falls back to pages, and so does the relist after a 410: the watcher remembers the refusal
/// across its restarts and does not ask again.
#[tokio::test]
async fn an_informer_on_a_server_without_watch_list_lists_page_by_page_and_asks_only_once() -> TestResult {
    let server = ApiServer::builder()
        .namespaces(&["w"])
        .reject_watch_list(true)
        .start()
        .await?;
    populate(&server)?;
    let informer = start(&server, options())?;
    let store = informer.store();
    tokio::time::timeout(WAIT, store.wait_synced()).await??;
    converged(&store, &server).await?;
    while_away(&server, |server| {
        server.delete("v1", "ConfigMap", Some("w"), "item-1")?;
        Ok(())
    })
    .await?;
    converged(&store, &server).await?;
    let journal = server.journal();
    let refused: Vec<_> = journal
        .iter()
        .filter(|e| e.path == CM_PATH && is_watch_list(e))
        .collect();
    assert_eq!(refused.len(), 1, "asked once: {refused:?}");
    assert_eq!(refused[0].status, 422);
    let pages = journal.iter().filter(|e| e.path == CM_PATH && !e.watch).count();
    assert!(pages >= 2, "the list and the relist were paginated");
    Ok(())
}
