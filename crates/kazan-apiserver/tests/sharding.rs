//! `shardSelector` on lists and watches (KEP-5866; k8s.io/apiserver pkg/storage/
//! selection_predicate.go `MatchesSharding` and `SetShardInfoOnList`, pkg/sharding/parser.go, and
//! the list options' conversion, which refuses a malformed selector with "invalid shard selector:").

use serde_json::{Value, json};

use crate::common;
use common::{TestResult, get, get_json};
use kazan_apiserver::ApiServer;

/// FNV-1a 64 of `s`, written out here (the standard's offset basis and prime) so that the server
/// is checked against the definition, not against the code it uses.
fn fnv1a(s: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in s.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

const LOWER_HALF: &str = "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')";
const UPPER_HALF: &str = "shardRange(object.metadata.uid, '0x8000000000000000', '0x10000000000000000')";

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_sharded_list_holds_the_objects_whose_uid_hashes_into_the_range_and_echoes_the_selector()
-> TestResult {
    let server = ApiServer::start().await?;
    let mut lower = Vec::new();
    let mut upper = Vec::new();
    for i in 0..40 {
        let cm = server.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("c{i:02}"), "namespace": "default"}}))?;
        let uid = cm["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        let name = format!("c{i:02}");
        if fnv1a(&uid) < 1 << 63 {
            lower.push(name)
        } else {
            upper.push(name)
        }
    }
    assert!(!lower.is_empty() && !upper.is_empty());
    for (selector, want) in [(LOWER_HALF, &lower), (UPPER_HALF, &upper)] {
        let query = format!("shardSelector={}", urlencode(selector));
        let list = get_json(
            server.addr(),
            &format!("/api/v1/namespaces/default/configmaps?{query}"),
        )
        .await?;
        assert_eq!(&names(&list), want, "{selector}");
        assert_eq!(list["metadata"]["shardInfo"]["selector"], selector);
    }
    // Without the feature the selector is ignored: every object, no shardInfo.
    let old = ApiServer::builder().sharding(false).start().await?;
    old.create(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}}),
    )?;
    let list = get_json(
        old.addr(),
        &format!(
            "/api/v1/namespaces/default/configmaps?shardSelector={}",
            urlencode(LOWER_HALF)
        ),
    )
    .await?;
    assert_eq!(names(&list).len(), 1);
    assert!(list["metadata"].get("shardInfo").is_none());
    Ok(())
}

#[tokio::test]
async fn a_malformed_shard_selector_is_a_400_naming_the_problem() -> TestResult {
    let server = ApiServer::start().await?;
    for (selector, says) in [
        (
            "shardRange(object.metadata.name, '0x0000000000000000', '0x8000000000000000')",
            "unsupported field path",
        ),
        (
            "shardRange(object.metadata.uid, '0x0000000000000000')",
            "requires exactly 3 arguments",
        ),
        ("labels(x)", "unsupported function"),
    ] {
        let answer = get(
            server.addr(),
            &format!("/api/v1/configmaps?shardSelector={}", urlencode(selector)),
        )
        .await?;
        assert_eq!(answer.status, 400, "{selector}: {}", answer.text());
        let body = answer.json()?;
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("invalid shard selector: "), "{message}");
        assert!(message.contains(says), "{message}");
    }
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
