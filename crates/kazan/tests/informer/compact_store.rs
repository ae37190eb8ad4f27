//! A compact store: each object kept as compact JSON, decoded on access, its identity readable
//! without decoding, and its bytes counted in `stats()`.

use k8s_openapi::api::core::v1::ConfigMap;

use super::{TestResult, WAIT, cm, converged, labeled, options, server, set_value, start};

#[tokio::test]
async fn a_compact_stores_objects_decode_equal_to_the_originals_and_its_bytes_are_reported() -> TestResult {
    let server = server().await?;
    for name in ["a", "b"] {
        server.create(cm("w", name, "1"))?;
    }
    server.create(labeled("w", "c", "blue"))?;
    let plain = start(&server, options())?;
    let compact = start(&server, options().compact_store(true))?;
    compact.index_by("team", |cm: &ConfigMap| {
        cm.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("team").cloned())
            .into_iter()
            .collect()
    });
    for informer in [&plain, &compact] {
        tokio::time::timeout(WAIT, informer.store().wait_synced()).await??;
    }
    set_value(&server, "a", "2")?;
    server.delete("v1", "ConfigMap", Some("w"), "b")?;
    server.create(cm("w", "d", "1"))?;
    converged(&plain.store(), &server).await?;
    converged(&compact.store(), &server).await?;

    let (plain, compact) = (plain.store(), compact.store());
    let decoded = compact.list();
    assert_eq!(decoded.len(), 3);
    let mut bytes = 0;
    for object in &decoded {
        let name = object.metadata.name.as_deref().unwrap_or_default();
        let original = plain.get("w", name).ok_or("missing from the plain store")?;
        assert_eq!(object.as_ref(), original.as_ref(), "{name}");
        assert_eq!(
            compact.resource_version_of("w", name),
            Some(original.metadata.resource_version.clone())
        );
        bytes += serde_json::to_vec(object.as_ref())?.len();
    }
    let stats = compact.stats();
    assert!(stats.compact);
    assert_eq!(stats.objects, 3);
    assert_eq!(stats.compact_bytes, bytes);
    assert_eq!(plain.stats().compact_bytes, 0);
    // Indexes work over decoded copies.
    let blue = compact.by_index("team", "blue").ok_or("no index")?;
    assert_eq!(blue.len(), 1);
    // Bytes leave with the objects.
    server.delete("v1", "ConfigMap", Some("w"), "c")?;
    converged(&compact, &server).await?;
    assert!(compact.stats().compact_bytes < bytes);
    Ok(())
}
