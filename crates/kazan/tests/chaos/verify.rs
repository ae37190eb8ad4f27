//! The checks: each consumer against the server's change log (every list equals the server's
//! state at the list's version; the events after it are exactly the server's changes after it,
//! in order, up to the end or a Gone) and its final cache against the server's objects.

use std::collections::BTreeMap;

use kazan::watcher::EventType;
use kazan_apiserver::{Change, ChangeType};

use super::consumer::{Cached, Delivered, Key, Record};

/// How many entries of context a mismatch shows on each side.
const CONTEXT: usize = 3;

/// The changes a consumer's watch should see, in order.
pub fn changes_for<'a>(record: &Record, changes: &'a [Change]) -> Vec<&'a Change> {
    changes
        .iter()
        .filter(|c| {
            c.group.is_empty()
                && c.plural == record.spec.kind.plural()
                && record
                    .spec
                    .namespace
                    .as_deref()
                    .is_none_or(|ns| c.namespace == ns)
        })
        .collect()
}

fn expected_of(change: &Change) -> Delivered {
    Delivered {
        rv: change.resource_version,
        event: match change.change_type {
            ChangeType::Added => EventType::Added,
            ChangeType::Modified => EventType::Modified,
            ChangeType::Deleted => EventType::Deleted,
        },
        key: (change.namespace.clone(), change.name.clone()),
    }
}

fn show(items: &[Delivered], around: usize) -> String {
    let from = around.saturating_sub(CONTEXT);
    let to = (around + CONTEXT + 1).min(items.len());
    items
        .get(from..to)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let marker = if from + i == around { ">" } else { " " };
            format!(
                "{marker} [{}] {} {} {}/{}",
                from + i,
                d.rv,
                d.event,
                d.key.0,
                d.key.1
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks every segment of a consumer against the changes of its resource and scope.
pub fn check_segments(record: &Record, relevant: &[&Change]) -> Result<(), String> {
    let name = record.spec.name();
    // The server's state, advanced through the changes as the segments' versions increase.
    let mut state: BTreeMap<Key, u64> = BTreeMap::new();
    let mut applied = 0;
    let mut last_list_rv = 0;
    let count = record.segments.len();
    for (i, segment) in record.segments.iter().enumerate() {
        let at = segment.list_rv;
        if at < last_list_rv {
            return Err(format!(
                "{name}: segment {i} lists at {at}, before the previous list at {last_list_rv}"
            ));
        }
        last_list_rv = at;
        while let Some(change) = relevant.get(applied).filter(|c| c.resource_version <= at) {
            let key = (change.namespace.clone(), change.name.clone());
            match change.change_type {
                ChangeType::Deleted => state.remove(&key),
                _ => state.insert(key, change.resource_version),
            };
            applied += 1;
        }
        // The list equals the state at its version.
        let mut listed = BTreeMap::new();
        for (key, rv) in &segment.listed {
            if listed.insert(key.clone(), *rv).is_some() {
                return Err(format!(
                    "{name}: the list at {at} (segment {i}) holds {}/{} twice",
                    key.0, key.1
                ));
            }
        }
        if listed != state {
            let missing: Vec<_> = state
                .iter()
                .filter(|(k, v)| listed.get(*k) != Some(v))
                .take(5)
                .collect();
            let extra: Vec<_> = listed
                .iter()
                .filter(|(k, v)| state.get(*k) != Some(v))
                .take(5)
                .collect();
            return Err(format!(
                "{name}: the list at {at} (segment {i}) is not the server's state at {at}: \
                 the server had {} objects, the list {}; on the server, not (so) in the list: {missing:?}; \
                 in the list, not (so) on the server: {extra:?}",
                state.len(),
                listed.len()
            ));
        }
        // The watch after it delivers exactly the later changes.
        let expected: Vec<Delivered> = relevant[applied..].iter().map(|c| expected_of(c)).collect();
        for (j, delivered) in segment.events.iter().enumerate() {
            match expected.get(j) {
                Some(want) if want == delivered => {}
                Some(_) => {
                    return Err(format!(
                        "{name}: segment {i} (list at {at}): event {j} differs from the server's change log\n\
                         delivered:\n{}\nserver:\n{}",
                        show(&segment.events, j),
                        show(&expected, j)
                    ));
                }
                None => {
                    return Err(format!(
                        "{name}: segment {i} (list at {at}): event {j} was delivered, but the server made only \
                         {} changes after {at}\ndelivered:\n{}",
                        expected.len(),
                        show(&segment.events, j)
                    ));
                }
            }
        }
        let last = i + 1 == count;
        if !segment.ended_by_gone && !last {
            return Err(format!(
                "{name}: segment {i} was followed by another without a Gone"
            ));
        }
        if last && !segment.ended_by_gone && segment.events.len() != expected.len() {
            let j = segment.events.len();
            return Err(format!(
                "{name}: segment {i} (list at {at}): {} of the server's changes after {at} were never delivered; \
                 the first missing:\n{}",
                expected.len() - j,
                show(&expected, j)
            ));
        }
    }
    match record.segments.last() {
        None => Err(format!("{name}: no list ever completed")),
        Some(s) if s.ended_by_gone => Err(format!(
            "{name}: stopped after a Gone, before the relist completed"
        )),
        Some(_) => Ok(()),
    }
}

/// Checks the final cache against the server's objects (version and content).
pub fn check_cache(record: &Record, server: &BTreeMap<Key, Cached>) -> Result<(), String> {
    if &record.cache == server {
        return Ok(());
    }
    let name = record.spec.name();
    let missing: Vec<_> = server
        .iter()
        .filter(|(k, v)| record.cache.get(*k) != Some(v))
        .take(5)
        .collect();
    let extra: Vec<_> = record
        .cache
        .iter()
        .filter(|(k, v)| server.get(*k) != Some(v))
        .take(5)
        .collect();
    Err(format!(
        "{name}: the cache ({} objects) differs from the server ({} objects); \
         on the server, not (so) in the cache: {missing:?}; in the cache, not (so) on the server: {extra:?}",
        record.cache.len(),
        server.len()
    ))
}
