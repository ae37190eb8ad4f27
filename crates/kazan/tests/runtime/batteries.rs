//! The batteries against the embedded API server: the finalizer helper, the event recorder and
//! `await_condition`.

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use k8s_openapi::api::core::v1::ConfigMap;
use kazan::{
    Client, Config, Request,
    runtime::{
        Action,
        finalizer::{Event, FinalizerError, finalizer},
    },
};
use kazan_apiserver::ApiServer;
use serde_json::json;

use super::{TestError, TestResult};

const FINALIZER: &str = "kazan.test/cleanup";

async fn server() -> Result<ApiServer, TestError> {
    Ok(ApiServer::builder().namespaces(&["rt"]).start().await?)
}

fn client(server: &ApiServer) -> Result<Client, TestError> {
    Ok(Client::new(Config::new(server.url().parse()?))?)
}

async fn create_cm(client: &Client, name: &str, finalizers: &[&str]) -> Result<ConfigMap, TestError> {
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "rt", "finalizers": finalizers},
        "data": {"v": "1"}
    }))?;
    Ok(client.run(&Request::create(&cm)?.namespace("rt")).await?)
}

async fn get_cm(client: &Client, name: &str) -> Result<Option<ConfigMap>, TestError> {
    match client.run(&Request::get::<ConfigMap>(name).namespace("rt")).await {
        Ok(cm) => Ok(Some(cm)),
        Err(e) if e.status_code() == Some(404) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn finalizers(cm: &ConfigMap) -> Vec<String> {
    cm.metadata.finalizers.clone().unwrap_or_default()
}

/// What the wrapped reconcile was called with: ("apply" | "cleanup", finalizers it saw).
type Calls = Arc<Mutex<Vec<(&'static str, Vec<String>)>>>;

/// Runs the finalizer helper with a reconcile that records its calls and answers `answer`.
async fn run_finalizer(
    client: &Client,
    object: ConfigMap,
    calls: &Calls,
    cleanup_fails: bool,
) -> Result<Action, FinalizerError<std::io::Error>> {
    let calls = calls.clone();
    finalizer(client, FINALIZER, Arc::new(object), move |event| async move {
        let (what, obj) = match &event {
            Event::Apply(o) => ("apply", o),
            Event::Cleanup(o) => ("cleanup", o),
        };
        calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((what, finalizers(obj)));
        if what == "cleanup" && cleanup_fails {
            return Err(std::io::Error::other("the external thing is not deleted yet"));
        }
        Ok(Action::await_change())
    })
    .await
}

fn calls_of(calls: &Calls) -> Vec<(&'static str, Vec<String>)> {
    calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// kube-runtime `finalizer` (kube-runtime/src/finalizer.rs): the finalizer is added before the
/// first `Apply`; here by a JSON patch whose first op tests `metadata.resourceVersion`.
#[tokio::test]
async fn the_finalizer_is_added_before_the_first_apply_with_a_version_guarded_patch() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    let cm = create_cm(&client, "a", &[]).await?;
    server.clear_journal();
    let calls = Calls::default();
    let action = run_finalizer(&client, cm, &calls, false).await?;
    assert_eq!(action, Action::await_change());
    assert_eq!(calls_of(&calls), vec![("apply", vec![FINALIZER.to_string()])]);
    let stored = get_cm(&client, "a").await?.ok_or("the object is gone")?;
    assert_eq!(finalizers(&stored), [FINALIZER]);
    let patches: Vec<_> = server
        .journal()
        .into_iter()
        .filter(|e| e.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0].content_type.as_deref(),
        Some("application/json-patch+json")
    );
    // A second pass on the stored object: no write, just Apply.
    server.clear_journal();
    run_finalizer(&client, stored, &calls, false).await?;
    assert!(!server.journal().iter().any(|e| e.method == "PATCH"));
    Ok(())
}

#[tokio::test]
async fn on_deletion_cleanup_runs_then_the_finalizer_is_removed_and_the_object_goes() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    create_cm(&client, "a", &[FINALIZER]).await?;
    client
        .run(&Request::delete::<ConfigMap>("a").namespace("rt"))
        .await?;
    let deleting = get_cm(&client, "a")
        .await?
        .ok_or("deleted at once despite the finalizer")?;
    assert!(deleting.metadata.deletion_timestamp.is_some());
    let calls = Calls::default();
    run_finalizer(&client, deleting, &calls, false).await?;
    assert_eq!(calls_of(&calls), vec![("cleanup", vec![FINALIZER.to_string()])]);
    assert!(
        get_cm(&client, "a").await?.is_none(),
        "the object stayed after cleanup"
    );
    Ok(())
}

#[tokio::test]
async fn a_failed_cleanup_keeps_the_finalizer() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    create_cm(&client, "a", &[FINALIZER]).await?;
    client
        .run(&Request::delete::<ConfigMap>("a").namespace("rt"))
        .await?;
    let deleting = get_cm(&client, "a").await?.ok_or("gone")?;
    let calls = Calls::default();
    let err = run_finalizer(&client, deleting, &calls, true).await;
    assert!(matches!(err, Err(FinalizerError::Cleanup { .. })), "{err:?}");
    let stored = get_cm(&client, "a")
        .await?
        .ok_or("the object went without its cleanup")?;
    assert_eq!(finalizers(&stored), [FINALIZER]);
    Ok(())
}

/// Two replicas decide from the same version of an object that already carries another
/// finalizer: both would append theirs. The resourceVersion test makes the second patch fail
/// (422), the second replica reads the object again, finds the finalizer, and only applies.
#[tokio::test]
async fn two_replicas_adding_the_finalizer_from_one_version_add_it_once() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    let cm = create_cm(&client, "a", &["other.test/keep"]).await?;
    server.clear_journal();
    let (one, two) = (Calls::default(), Calls::default());
    let (a, b) = tokio::join!(
        run_finalizer(&client, cm.clone(), &one, false),
        run_finalizer(&client, cm, &two, false)
    );
    a?;
    b?;
    let stored = get_cm(&client, "a").await?.ok_or("gone")?;
    assert_eq!(finalizers(&stored), ["other.test/keep", FINALIZER]);
    for calls in [&one, &two] {
        assert_eq!(
            calls_of(calls),
            vec![(
                "apply",
                vec!["other.test/keep".to_string(), FINALIZER.to_string()]
            )]
        );
    }
    let refused = server
        .journal()
        .iter()
        .filter(|e| e.method == "PATCH" && matches!(e.status, 409 | 422))
        .count();
    assert_eq!(
        refused, 1,
        "the losing replica's write should have been refused once"
    );
    Ok(())
}

/// Removal from a stale object: replica one removes the finalizer; replica two, deciding from
/// the same version, must not remove anything else (the index now points at another finalizer).
#[tokio::test]
async fn a_replica_removing_the_finalizer_from_a_stale_object_reads_again_and_removes_nothing_else()
-> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    create_cm(&client, "a", &[FINALIZER, "other.test/keep"]).await?;
    client
        .run(&Request::delete::<ConfigMap>("a").namespace("rt"))
        .await?;
    let stale = get_cm(&client, "a").await?.ok_or("gone")?;
    let calls = Calls::default();
    run_finalizer(&client, stale.clone(), &calls, false).await?;
    run_finalizer(&client, stale, &calls, false).await?;
    let stored = get_cm(&client, "a").await?.ok_or("gone")?;
    assert_eq!(finalizers(&stored), ["other.test/keep"]);
    Ok(())
}

/// For the type checker: a reconcile that cannot fail also fits.
#[allow(dead_code)]
async fn infallible_fits(client: &Client, cm: ConfigMap) -> Result<Action, FinalizerError<Infallible>> {
    finalizer(client, FINALIZER, Arc::new(cm), |_e: Event<ConfigMap>| async {
        Ok::<_, Infallible>(Action::await_change())
    })
    .await
}

mod events {
    use std::time::Duration;

    use k8s_openapi::api::{core::v1::ConfigMap, events::v1::Event as KubeEvent};
    use kazan::{
        Request,
        runtime::events::{EventType, NewEvent, Recorder, Reporter, reference_to},
    };
    use kazan_apiserver::ResourceDef;

    use super::{TestError, TestResult, client, create_cm, server};

    /// The embedded server serves core/v1 Events only; the events.k8s.io/v1 kind is registered
    /// here as a real cluster serves it.
    async fn events_server() -> Result<kazan_apiserver::ApiServer, TestError> {
        let server = server().await?;
        server.register(ResourceDef::new("events.k8s.io", "v1", "Event", "events", true));
        Ok(server)
    }

    fn reporter() -> Reporter {
        Reporter {
            controller: "kazan.test/runtime".into(),
            instance: "runtime-test-0".into(),
        }
    }

    fn occurrence(cm: &ConfigMap, reason: &str, note: &str) -> NewEvent {
        NewEvent {
            event_type: EventType::Warning,
            reason: reason.into(),
            action: "Reconcile".into(),
            note: Some(note.into()),
            regarding: reference_to(cm),
            related: None,
        }
    }

    async fn events_in(client: &kazan::Client) -> Result<Vec<KubeEvent>, TestError> {
        Ok(client
            .run(&Request::list::<KubeEvent>().namespace("rt"))
            .await?
            .items)
    }

    /// client-go tools/events/event_broadcaster.go `recordToSink`: the second isomorphic event
    /// sets the series, later ones are counted and written on the heartbeat.
    #[tokio::test]
    async fn repeats_of_one_event_become_a_single_event_with_a_series_count() -> TestResult {
        let server = events_server().await?;
        let client = client(&server)?;
        let cm = create_cm(&client, "a", &[]).await?;
        let recorder = Recorder::new(client.clone(), reporter());
        for i in 0..5 {
            // The note differs; it is not part of the series identity.
            recorder
                .publish(occurrence(&cm, "FailedSync", &format!("attempt {i}")))
                .await?;
        }
        let events = events_in(&client).await?;
        assert_eq!(events.len(), 1, "one Event for five occurrences");
        let ev = &events[0];
        assert_eq!(
            ev.series.as_ref().map(|s| s.count),
            Some(2),
            "written at the second"
        );
        assert_eq!(ev.reason.as_deref(), Some("FailedSync"));
        assert_eq!(ev.type_.as_deref(), Some("Warning"));
        assert_eq!(ev.note.as_deref(), Some("attempt 0"));
        assert_eq!(ev.reporting_controller.as_deref(), Some("kazan.test/runtime"));
        let regarding = ev.regarding.as_ref().ok_or("no regarding")?;
        assert_eq!(
            (regarding.kind.as_deref(), regarding.name.as_deref()),
            (Some("ConfigMap"), Some("a"))
        );
        assert_eq!(regarding.uid, cm.metadata.uid);
        recorder.flush().await?;
        let events = events_in(&client).await?;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].series.as_ref().map(|s| s.count), Some(5));
        Ok(())
    }

    #[tokio::test]
    async fn events_with_different_reasons_or_objects_are_separate() -> TestResult {
        let server = events_server().await?;
        let client = client(&server)?;
        let a = create_cm(&client, "a", &[]).await?;
        let b = create_cm(&client, "b", &[]).await?;
        let recorder = Recorder::new(client.clone(), reporter());
        recorder.publish(occurrence(&a, "Created", "x")).await?;
        recorder.publish(occurrence(&a, "Updated", "x")).await?;
        recorder.publish(occurrence(&b, "Created", "x")).await?;
        let events = events_in(&client).await?;
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e.series.is_none()));
        Ok(())
    }

    #[tokio::test]
    async fn a_series_whose_event_was_deleted_starts_a_new_event() -> TestResult {
        let server = events_server().await?;
        let client = client(&server)?;
        let cm = create_cm(&client, "a", &[]).await?;
        let recorder = Recorder::new(client.clone(), reporter());
        recorder.publish(occurrence(&cm, "FailedSync", "1")).await?;
        let first = events_in(&client).await?;
        let name = first
            .first()
            .and_then(|e| e.metadata.name.clone())
            .ok_or("no event")?;
        client
            .run(&Request::delete::<KubeEvent>(&name).namespace("rt"))
            .await?;
        recorder.publish(occurrence(&cm, "FailedSync", "2")).await?;
        let events = events_in(&client).await?;
        assert_eq!(events.len(), 1);
        assert_ne!(events[0].metadata.name.as_deref(), Some(name.as_str()));
        assert_eq!(events[0].note.as_deref(), Some("2"));
        Ok(())
    }

    #[tokio::test]
    async fn a_series_idle_past_the_finish_interval_starts_a_new_event() -> TestResult {
        let server = events_server().await?;
        let client = client(&server)?;
        let cm = create_cm(&client, "a", &[]).await?;
        let recorder = Recorder::new(client.clone(), reporter()).finish_interval(Duration::ZERO);
        recorder.publish(occurrence(&cm, "FailedSync", "1")).await?;
        recorder.publish(occurrence(&cm, "FailedSync", "2")).await?;
        assert_eq!(events_in(&client).await?.len(), 2);
        Ok(())
    }
}

mod wait {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kazan::{
        Request,
        runtime::{AwaitError, await_condition},
    };
    use serde_json::json;

    use super::{TestResult, client, create_cm, server};

    fn v(cm: Option<&ConfigMap>) -> Option<String> {
        cm.and_then(|c| c.data.as_ref()).and_then(|d| d.get("v").cloned())
    }

    fn named(name: &str) -> Request<kazan::ObjectList<ConfigMap>> {
        Request::list::<ConfigMap>()
            .namespace("rt")
            .fields(&format!("metadata.name={name}"))
    }

    async fn set_v(client: &kazan::Client, name: &str, value: &str) -> TestResult {
        client
            .run(&Request::merge_patch::<ConfigMap>(name, &json!({"data": {"v": value}})).namespace("rt"))
            .await?;
        Ok(())
    }

    /// kube-runtime `await_condition` watches from a list; here a known version starts the watch
    /// right there: the journal shows no list, and the changes after the version are seen.
    #[tokio::test]
    async fn from_a_known_version_it_watches_without_listing_and_sees_later_changes() -> TestResult {
        let server = server().await?;
        let client = client(&server)?;
        let cm = create_cm(&client, "a", &[]).await?;
        let rv = cm.metadata.resource_version.clone().ok_or("no version")?;
        server.clear_journal();
        let writer = {
            let client = client.clone();
            tokio::spawn(async move {
                for value in ["2", "3"] {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    set_v(&client, "a", value).await?;
                }
                Ok::<_, super::TestError>(())
            })
        };
        let met = await_condition(
            &client,
            named("a"),
            Some(&rv),
            |cm| v(cm).as_deref() == Some("3"),
            Duration::from_secs(20),
        )
        .await?;
        writer.await??;
        assert_eq!(v(met.as_ref()).as_deref(), Some("3"));
        let journal = server.journal();
        let lists = journal
            .iter()
            .filter(|e| e.method == "GET" && !e.watch && e.path.ends_with("/configmaps"))
            .count();
        assert_eq!(lists, 0, "a list was made although the version was known");
        assert!(
            journal
                .iter()
                .any(|e| e.watch && e.query.contains(&format!("resourceVersion={rv}")))
        );
        Ok(())
    }

    #[tokio::test]
    async fn without_a_version_it_lists_first_and_the_list_can_meet_the_condition() -> TestResult {
        let server = server().await?;
        let client = client(&server)?;
        create_cm(&client, "a", &[]).await?;
        let met = await_condition(
            &client,
            named("a"),
            None,
            |cm| v(cm).as_deref() == Some("1"),
            Duration::from_secs(20),
        )
        .await?;
        assert_eq!(v(met.as_ref()).as_deref(), Some("1"));
        Ok(())
    }

    #[tokio::test]
    async fn without_a_version_an_empty_list_meets_a_condition_on_absence() -> TestResult {
        let server = server().await?;
        let client = client(&server)?;
        let met = await_condition(
            &client,
            named("missing"),
            None,
            |cm| cm.is_none(),
            Duration::from_secs(20),
        )
        .await?;
        assert!(met.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn a_deletion_meets_a_condition_on_absence() -> TestResult {
        let server = server().await?;
        let client = client(&server)?;
        let cm = create_cm(&client, "a", &[]).await?;
        let rv = cm.metadata.resource_version.clone().ok_or("no version")?;
        let deleter = {
            let client = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                client
                    .run(&Request::delete::<ConfigMap>("a").namespace("rt"))
                    .await
                    .map(|_| ())
            })
        };
        let met = await_condition(
            &client,
            named("a"),
            Some(&rv),
            |cm| cm.is_none(),
            Duration::from_secs(20),
        )
        .await?;
        deleter.await??;
        assert!(met.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn a_condition_never_met_ends_in_a_timeout_error() -> TestResult {
        let server = server().await?;
        let client = client(&server)?;
        let cm = create_cm(&client, "a", &[]).await?;
        let rv = cm.metadata.resource_version.clone().ok_or("no version")?;
        let result = await_condition(
            &client,
            named("a"),
            Some(&rv),
            |_| false,
            Duration::from_millis(200),
        )
        .await;
        assert!(matches!(result, Err(AwaitError::Timeout(_))), "{result:?}");
        Ok(())
    }
}
