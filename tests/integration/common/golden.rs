//! Golden JSON fixtures under `tests/golden/`: responses are normalised (times, UUIDs, tool
//! call ids) and compared as JSON values. `UPDATE_GOLDEN=1` rewrites the fixtures.

use std::path::PathBuf;

use serde_json::{Map, Value};

const TIME_KEYS: &[&str] = &["createdAt", "updatedAt", "lastActiveAt", "timestamp"];

/// Replaces what differs from run to run with stable placeholders.
pub fn normalize(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let value = if TIME_KEYS.contains(&key.as_str()) && value.is_number() {
                    Value::String("<time>".into())
                } else {
                    normalize(value)
                };
                out.insert(key.clone(), value);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::String(s) => Value::String(normalize_str(s)),
        other => other.clone(),
    }
}

fn normalize_str(s: &str) -> String {
    let mut out = replace_uuids(s);
    if let Some(rest) = out.strip_prefix("draft:")
        && let Some((key, ts)) = rest.rsplit_once(':')
        && ts.chars().all(|c| c.is_ascii_digit())
    {
        out = format!("draft:{key}:<time>");
    }
    if let Some(hex) = out.strip_prefix("call_")
        && hex.len() == 32
        && hex.chars().all(|c| c.is_ascii_hexdigit())
    {
        out = "call_<id>".into();
    }
    out
}

fn replace_uuids(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if i + 36 <= bytes.len() && is_uuid(&s[i..i + 36]) {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn is_uuid(s: &str) -> bool {
    s.char_indices().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => c == '-',
        _ => c.is_ascii_hexdigit(),
    })
}

/// Compares `actual` (normalised) with `tests/golden/<name>.json`.
pub fn assert_golden(name: &str, actual: &Value) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.json"));
    let actual = normalize(actual);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        return;
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    assert_eq!(
        actual,
        expected,
        "golden {name} differs:\nactual:\n{}",
        serde_json::to_string_pretty(&actual).unwrap()
    );
}

#[test]
fn normalisation() {
    let value = serde_json::json!({
        "id": "draft:k:1700000000000",
        "sessionId": "0b9a5f0e-7a35-4e2c-9d32-1b1f3e0c2d4a",
        "timestamp": 5,
        "toolCallId": "call_0123456789abcdef0123456789abcdef",
    });
    assert_eq!(
        normalize(&value),
        serde_json::json!({"id": "draft:k:<time>", "sessionId": "<uuid>", "timestamp": "<time>", "toolCallId": "call_<id>"})
    );
}
