//! Vectors and their sources:
//!
//! - FNV-1a 64: Go's `hash/fnv` golden values (`fnv_test.go`, `golden64a`: "", "a", "ab", "abc")
//!   and the FNV reference test suite ("foobar"); the rest computed independently (Python).
//! - Shard ranges and the wire format: the `shardSelector` parameter's API reference (Kubernetes
//!   1.36 OpenAPI, KEP-5866's "2-shard split" and "4-shard split" examples), and apimachinery's
//!   `pkg/sharding` tests (`TestNewShardRangeSelector`: namespace 0 of 1, uid 0 and 1 of 2, a
//!   3-shard partition ending at 2⁶⁴).
//! - Refusals: k8s.io/apiserver `pkg/sharding/parser.go` (the messages are its format strings).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta, ShardInfo};

use super::*;

#[test]
fn fnv1a_64_matches_the_standard_vectors() {
    for (input, hash) in [
        ("", 0xcbf2_9ce4_8422_2325_u64),
        ("a", 0xaf63_dc4c_8601_ec8c),
        ("ab", 0x089c_4407_b545_986a),
        ("abc", 0xe71f_a219_0541_574b),
        ("foobar", 0x8594_4171_f739_67e8),
        ("test-uid-123", 0xd0ba_6798_3455_6c0b),
        ("default", 0xebad_a516_8620_c5fe),
    ] {
        assert_eq!(fnv1a_64(input.as_bytes()), hash, "{input:?}");
    }
}

#[test]
fn fixed_shards_are_written_as_the_api_reference_splits() -> Result<(), ShardRangeError> {
    let uid = |i, n| ShardSelector::fixed(ShardKey::Uid, i, n).map(|s| s.to_string());
    assert_eq!(
        uid(0, 2)?,
        "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')"
    );
    assert_eq!(
        uid(1, 2)?,
        "shardRange(object.metadata.uid, '0x8000000000000000', '0x10000000000000000')"
    );
    let four = [
        "shardRange(object.metadata.uid, '0x0000000000000000', '0x4000000000000000')",
        "shardRange(object.metadata.uid, '0x4000000000000000', '0x8000000000000000')",
        "shardRange(object.metadata.uid, '0x8000000000000000', '0xc000000000000000')",
        "shardRange(object.metadata.uid, '0xc000000000000000', '0x10000000000000000')",
    ];
    for (i, want) in (0..).zip(four) {
        assert_eq!(uid(i, 4)?, want);
    }
    assert_eq!(
        ShardSelector::fixed(ShardKey::Namespace, 0, 1)?.to_string(),
        "shardRange(object.metadata.namespace, '0x0000000000000000', '0x10000000000000000')"
    );
    Ok(())
}

#[test]
fn shard_i_of_n_is_the_floor_of_i_times_2_64_over_n() -> Result<(), ShardRangeError> {
    let three: Vec<HashRange> = (0..3)
        .map(|i| HashRange::of_shard(i, 3))
        .collect::<Result<_, _>>()?;
    assert_eq!(three[0], HashRange::new(0, 0x5555_5555_5555_5555)?);
    assert_eq!(
        three[1],
        HashRange::new(0x5555_5555_5555_5555, 0xaaaa_aaaa_aaaa_aaaa)?
    );
    assert_eq!(three[2], HashRange::new(0xaaaa_aaaa_aaaa_aaaa, HASH_SPACE_END)?);
    assert!(matches!(
        HashRange::of_shard(3, 3),
        Err(ShardRangeError::NoSuchShard { index: 3, total: 3 })
    ));
    assert!(HashRange::of_shard(0, 0).is_err());
    Ok(())
}

#[test]
fn fixed_shards_partition_the_hash_space_for_any_count() -> Result<(), ShardRangeError> {
    for total in [1_u64, 2, 3, 5, 7, 10, 16, 17, 100, 1000, u64::MAX] {
        let first = HashRange::of_shard(0, total)?;
        let last = HashRange::of_shard(total - 1, total)?;
        assert_eq!(first.start(), 0);
        assert_eq!(last.end(), HASH_SPACE_END);
        if total <= 1000 {
            for i in 1..total {
                assert_eq!(
                    u128::from(HashRange::of_shard(i, total)?.start()),
                    HashRange::of_shard(i - 1, total)?.end()
                );
            }
        }
        for _ in 0..200 {
            let hash = fastrand::u64(..);
            let owners = if total <= 1000 {
                (0..total)
                    .filter(|i| HashRange::of_shard(*i, total).is_ok_and(|r| r.contains(hash)))
                    .count()
            } else {
                1
            };
            assert_eq!(owners, 1, "hash {hash:#x} of {total} shards");
        }
    }
    Ok(())
}

#[test]
fn ranges_are_half_open_and_reach_2_64() -> Result<(), ShardRangeError> {
    let r = HashRange::new(10, 20)?;
    assert!(r.contains(10) && r.contains(19) && !r.contains(20) && !r.contains(9));
    let top = HashRange::new(u64::MAX, HASH_SPACE_END)?;
    assert!(top.contains(u64::MAX));
    assert!(HashRange::full().contains(0) && HashRange::full().contains(u64::MAX));
    assert!(HashRange::new(5, 5).is_err());
    assert!(HashRange::new(0, HASH_SPACE_END + 1).is_err());
    Ok(())
}

#[test]
fn selectors_join_ranges_with_or_and_read_back() -> Result<(), Box<dyn std::error::Error>> {
    let s = ShardSelector::new(
        ShardKey::Uid,
        [HashRange::of_shard(0, 4)?, HashRange::of_shard(2, 4)?],
    )?;
    let wire = s.to_string();
    assert_eq!(
        wire,
        "shardRange(object.metadata.uid, '0x0000000000000000', '0x4000000000000000') || \
         shardRange(object.metadata.uid, '0x8000000000000000', '0xc000000000000000')"
    );
    assert_eq!(ShardSelector::parse(&wire)?, s);
    // Spacing, parentheses and double quotes are CEL too.
    let loose = "( shardRange(object.metadata.uid,\"0x0000000000000000\",'0x4000000000000000') )||shardRange(object.metadata.uid, '0x8000000000000000', '0xc000000000000000')";
    assert_eq!(ShardSelector::parse(loose)?, s);
    assert!(ShardSelector::new(ShardKey::Uid, []).is_err());
    Ok(())
}

#[test]
fn the_filter_decides_by_the_hash_of_the_key_field() -> Result<(), Box<dyn std::error::Error>> {
    // "test-uid-123" hashes to 0xd0ba679834556c0b, in the fourth of four shards.
    let meta = ObjectMeta {
        uid: Some("test-uid-123".into()),
        namespace: Some("default".into()),
        ..ObjectMeta::default()
    };
    assert!(ShardSelector::fixed(ShardKey::Uid, 3, 4)?.matches_meta(&meta));
    assert!(!ShardSelector::fixed(ShardKey::Uid, 2, 4)?.matches_meta(&meta));
    // A one-hash range at exactly the hash, as apimachinery's "hash in specific range".
    let exact = ShardSelector::new(
        ShardKey::Uid,
        [HashRange::new(0xd0ba_6798_3455_6c0b, 0xd0ba_6798_3455_6c0c)?],
    )?;
    assert!(exact.matches_meta(&meta));
    // "default" hashes to 0xebada5168620c5fe, also in the fourth shard.
    assert!(ShardSelector::fixed(ShardKey::Namespace, 3, 4)?.matches_meta(&meta));
    // A cluster-scoped object's namespace is "", hashing to the offset basis 0xcbf29ce484222325.
    let cluster_scoped = serde_json::json!({"metadata": {"name": "n", "uid": "x"}});
    assert!(ShardSelector::fixed(ShardKey::Namespace, 3, 4)?.matches_json(&cluster_scoped));
    assert!(!ShardSelector::fixed(ShardKey::Namespace, 2, 4)?.matches_json(&cluster_scoped));
    Ok(())
}

#[test]
fn a_list_says_whether_the_server_filtered() -> Result<(), ShardRangeError> {
    let shard = ShardSelector::fixed(ShardKey::Uid, 1, 2)?;
    let echoed = |selector: &str| ListMeta {
        shard_info: Some(ShardInfo {
            selector: selector.into(),
        }),
        ..ListMeta::default()
    };
    assert_eq!(shard.mode_of(&echoed(&shard.to_string())), ShardMode::ServerSide);
    assert_eq!(shard.mode_of(&ListMeta::default()), ShardMode::ClientSide);
    let other = ShardSelector::fixed(ShardKey::Uid, 0, 2)?.to_string();
    assert_eq!(
        shard.mode_of(&echoed(&other)),
        ShardMode::Mismatch {
            echoed: other.clone()
        }
    );
    Ok(())
}

#[test]
fn malformed_selectors_are_refused_with_the_servers_words() {
    let refused = |s: &str| {
        ShardSelector::parse(s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let uid = "object.metadata.uid";
    let z = "'0x0000000000000000'";
    let half = "'0x8000000000000000'";
    for (selector, message) in [
        ("  ", "empty shard selector is not allowed; omit the parameter for unfiltered lists".to_string()),
        (
            &format!("shardRange({uid}, {z}, {half}) && shardRange({uid}, {z}, {half})"),
            r#"unsupported function "_&&_"; only shardRange() and || are allowed"#.to_string(),
        ),
        (
            &format!("range({uid}, {z}, {half})"),
            r#"unsupported function "range"; only shardRange() and || are allowed"#.to_string(),
        ),
        (
            &format!("shardRange({uid}, {z})"),
            "shardRange() requires exactly 3 arguments, got 2".to_string(),
        ),
        (
            &format!("shardRange(metadata.uid, {z}, {half})"),
            r#"unsupported field path "metadata.uid"; supported: object.metadata.uid, object.metadata.namespace"#
                .to_string(),
        ),
        (
            &format!("shardRange({uid}, 0, {half})"),
            "hexStart must be a string literal, got int64".to_string(),
        ),
        (
            &format!("shardRange({uid}, '0', {half})"),
            r#"hexStart must have '0x' prefix, got "0""#.to_string(),
        ),
        (
            &format!("shardRange({uid}, '0x', {half})"),
            "hexStart: hex value is required after '0x'".to_string(),
        ),
        (
            &format!("shardRange({uid}, {z}, '0x800000000000000000')"),
            r#"hexEnd: hex value too long (18 chars, max 17): "800000000000000000""#.to_string(),
        ),
        (
            &format!("shardRange({uid}, {z}, '0x8000000000000ABC')"),
            r#"hexEnd: invalid hex character "A" in "0x8000000000000ABC""#.to_string(),
        ),
        (
            &format!("shardRange({uid}, {z}, '0x20000000000000000')"),
            r#"hexEnd: 17-digit hex value must be '0x10000000000000000' (2^64), got "0x20000000000000000""#
                .to_string(),
        ),
        (
            &format!("shardRange({uid}, '0x0', {half})"),
            r#"hexStart must be a 0x-prefixed 16-digit hex value, got "0x0" (did you mean "0x0000000000000000"?)"#
                .to_string(),
        ),
        (
            &format!("shardRange({uid}, {half}, {half})"),
            "shard range start 0x8000000000000000 must be less than end 0x8000000000000000".to_string(),
        ),
        (
            &format!("shardRange({uid}, '0x10000000000000000', '0x10000000000000000')"),
            "shard range start 0x10000000000000000 must be less than end 0x10000000000000000".to_string(),
        ),
        (
            &format!("shardRange({uid}, {z}, {half}) || shardRange(object.metadata.namespace, {z}, {half})"),
            r#"all shard ranges must use the same field, got "object.metadata.uid" and "object.metadata.namespace""#
                .to_string(),
        ),
    ] {
        assert_eq!(refused(selector), message, "{selector}");
    }
    for syntax in [
        "shardRange(object.metadata.uid, '0x0000000000000000'",
        "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000') |",
        "shardRange(object.metadata.uid, '\\x30', '0x8000000000000000')",
        "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000') extra",
    ] {
        assert!(
            refused(syntax).starts_with("CEL parse error: "),
            "{syntax}: {}",
            refused(syntax)
        );
    }
}

#[test]
fn a_fixed_shard_is_written_i_slash_n() -> Result<(), Box<dyn std::error::Error>> {
    let shard: FixedShard = "1/4".parse()?;
    assert_eq!(shard, FixedShard { index: 1, total: 4 });
    assert_eq!(shard.to_string(), "1/4");
    assert_eq!(
        shard.selector(ShardKey::Uid)?,
        ShardSelector::fixed(ShardKey::Uid, 1, 4)?
    );
    for bad in ["4/4", "1", "a/4", "1/0", "-1/4", ""] {
        assert!(bad.parse::<FixedShard>().is_err(), "{bad}");
    }
    Ok(())
}
