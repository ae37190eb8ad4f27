//! The informer series of the runtime metrics (`kazan_informer_*`): read from the store at each
//! scrape, parsed as Prometheus text, counting relists and the deletes a relist synthesized, and
//! gone with their handle (kubernetes/kubernetes#73587 leaked such series).

use kazan::runtime::metrics::RuntimeMetrics;
use prometheus_client::registry::Registry;

use super::{EventKind, TestError, TestResult, WAIT, cm, next, options, server, start, while_away};

fn scrape(registry: &Registry) -> Result<prometheus_parse::Scrape, TestError> {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?;
    Ok(prometheus_parse::Scrape::parse(
        text.lines().map(|l| Ok(l.to_string())),
    )?)
}

/// The value of `metric` for `informer="cms"`, if there is a sample.
fn sample(scrape: &prometheus_parse::Scrape, metric: &str) -> Option<f64> {
    scrape.samples.iter().find_map(|s| {
        if s.metric != metric || s.labels.get("informer") != Some("cms") {
            return None;
        }
        match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => Some(v),
            _ => None,
        }
    })
}

#[tokio::test]
async fn informer_metrics_count_objects_bytes_relists_and_synthesized_deletes_and_go_with_their_handle()
-> TestResult {
    let server = server().await?;
    for name in ["a", "b", "c"] {
        server.create(cm("w", name, "1"))?;
    }
    let informer = start(&server, options().compact_store(true))?;
    let mut sub = informer.subscribe();
    while !matches!(next(&mut sub).await?.kind, EventKind::Synced) {}
    let mut registry = Registry::default();
    let metrics = RuntimeMetrics::new(&mut registry);
    let handle = metrics.informer("cms", &informer.store());

    let scraped = scrape(&registry)?;
    assert_eq!(sample(&scraped, "kazan_informer_objects"), Some(3.0));
    let bytes = informer.store().stats().compact_bytes;
    assert!(bytes > 0);
    assert_eq!(sample(&scraped, "kazan_informer_store_bytes"), Some(bytes as f64));
    assert_eq!(sample(&scraped, "kazan_informer_relists_total"), Some(0.0));
    assert_eq!(
        sample(&scraped, "kazan_informer_synthesized_deletes_total"),
        Some(0.0)
    );

    // "b" is deleted while the informer is away; the relist after the 410 reports it deleted.
    while_away(&server, |server| {
        server.delete("v1", "ConfigMap", Some("w"), "b")?;
        Ok(())
    })
    .await?;
    let until = tokio::time::Instant::now() + WAIT;
    while !matches!(next(&mut sub).await?.kind, EventKind::Synced) {
        if tokio::time::Instant::now() > until {
            return Err("no relist".into());
        }
    }
    let scraped = scrape(&registry)?;
    assert_eq!(sample(&scraped, "kazan_informer_objects"), Some(2.0));
    assert_eq!(sample(&scraped, "kazan_informer_relists_total"), Some(1.0));
    assert_eq!(
        sample(&scraped, "kazan_informer_synthesized_deletes_total"),
        Some(1.0)
    );

    drop(handle);
    let scraped = scrape(&registry)?;
    assert!(
        scraped.samples.iter().all(|s| s.labels.get("informer").is_none()),
        "a dropped handle's series stayed"
    );
    Ok(())
}

/// A store of decoded objects has no byte count: no `store_bytes` sample rather than a zero.
#[tokio::test]
async fn a_store_of_decoded_objects_reports_no_store_bytes() -> TestResult {
    let server = server().await?;
    server.create(cm("w", "a", "1"))?;
    let informer = start(&server, options())?;
    informer.store().wait_synced().await?;
    let mut registry = Registry::default();
    let metrics = RuntimeMetrics::new(&mut registry);
    let _handle = metrics.informer("cms", &informer.store());
    let scraped = scrape(&registry)?;
    assert_eq!(sample(&scraped, "kazan_informer_objects"), Some(1.0));
    assert_eq!(sample(&scraped, "kazan_informer_store_bytes"), None);
    Ok(())
}
