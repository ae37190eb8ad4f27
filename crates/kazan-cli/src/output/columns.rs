//! The columns kazan prints itself, for a server that does not serve Tables (the table output
//! otherwise prints the server's own columns, see [`super::server_table`]): NAME and AGE, as
//! kubectl's default printer shows any object (cli-runtime `printers/tableprinter.go`,
//! `objectMetaColumnDefinitions`).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kazan::table::TableColumn;
use serde_json::Value;

/// NAME and AGE, as a Table's column definitions.
pub fn fallback_columns() -> Vec<TableColumn> {
    ["Name", "Age"]
        .into_iter()
        .map(|name| TableColumn {
            name: name.to_string(),
            column_type: "string".to_string(),
            ..TableColumn::default()
        })
        .collect()
}

/// The cells of [`fallback_columns`] for an object with this metadata.
pub fn fallback_cells(metadata: &ObjectMeta, now: Timestamp) -> Vec<Value> {
    vec![
        Value::String(metadata.name.clone().unwrap_or_default()),
        Value::String(age(metadata, now)),
    ]
}

/// The object's age as kubectl prints it, or `<unknown>` without a creation time.
pub fn age(metadata: &ObjectMeta, now: Timestamp) -> String {
    match &metadata.creation_timestamp {
        Some(created) => human_duration(now.as_second().saturating_sub(created.0.as_second())),
        None => "<unknown>".to_string(),
    }
}

/// kubectl's `duration.HumanDuration`: `45s`, `119s`, `2m5s`, `15m`, `3h20m`, `20h`, `3d4h`,
/// `45d`, `2y30d`, `9y`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    let seconds = seconds.max(0);
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let years = hours / 24 / 365;
        return match (hours / 24) % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (0, "0s"),
            (-1, "0s"),
            (-5, "<invalid>"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 20 * 60, "3h20m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (45 * 86400, "45d"),
            (2 * 365 * 86400 + 30 * 86400, "2y30d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, shown) in cases {
            assert_eq!(human_duration(seconds), shown, "{seconds}");
        }
    }

    #[test]
    fn the_fallback_is_name_and_age() -> Result<(), Box<dyn std::error::Error>> {
        let metadata: ObjectMeta = serde_json::from_value(
            serde_json::json!({"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"}),
        )?;
        let now: Timestamp = "2026-01-01T00:02:05Z".parse()?;
        assert_eq!(fallback_cells(&metadata, now), ["a", "2m5s"]);
        assert_eq!(fallback_cells(&ObjectMeta::default(), now), ["", "<unknown>"]);
        let names: Vec<String> = fallback_columns().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["Name", "Age"]);
        Ok(())
    }
}
