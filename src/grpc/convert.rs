//! Domain types to and from their proto messages.

use prost_types::value::Kind;
use serde_json::Value;

use crate::domain::*;
use crate::domain::{Event, EventKind};
use crate::error::GatewayError;
use crate::proto as pb;

pub fn json(value: &Value) -> prost_types::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => {
            Kind::ListValue(prost_types::ListValue { values: items.iter().map(json).collect() })
        }
        Value::Object(map) => Kind::StructValue(prost_types::Struct {
            fields: map.iter().map(|(k, v)| (k.clone(), json(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A protobuf `Value` as JSON; whole numbers become integers (protobuf has only doubles), so
/// `{"max_queue": 1}` arrives as the integer it was meant to be.
pub fn from_proto(value: &prost_types::Value) -> Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
            Value::from(*n as i64)
        }
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(*n).map(Value::Number).unwrap_or(Value::Null)
        }
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(from_proto).collect()),
        Some(Kind::StructValue(fields)) => from_struct(fields),
    }
}

pub fn from_struct(fields: &prost_types::Struct) -> Value {
    Value::Object(fields.fields.iter().map(|(k, v)| (k.clone(), from_proto(v))).collect())
}

/// A JSON object as a protobuf `Struct` (anything else: an empty one).
pub fn to_struct(value: &Value) -> prost_types::Struct {
    match json(value).kind {
        Some(Kind::StructValue(fields)) => fields,
        _ => prost_types::Struct::default(),
    }
}

/// A thinking level from the wire; unspecified or unknown values are INVALID_ARGUMENT.
pub fn thinking_from(level: i32) -> Result<ThinkingLevel, GatewayError> {
    Ok(match pb::ThinkingLevel::try_from(level) {
        Ok(pb::ThinkingLevel::Off) => ThinkingLevel::Off,
        Ok(pb::ThinkingLevel::Minimal) => ThinkingLevel::Minimal,
        Ok(pb::ThinkingLevel::Low) => ThinkingLevel::Low,
        Ok(pb::ThinkingLevel::Medium) => ThinkingLevel::Medium,
        Ok(pb::ThinkingLevel::High) => ThinkingLevel::High,
        _ => return Err(ThinkingLevel::invalid(&level.to_string())),
    })
}

pub fn thinking(level: ThinkingLevel) -> i32 {
    (match level {
        ThinkingLevel::Off => pb::ThinkingLevel::Off,
        ThinkingLevel::Minimal => pb::ThinkingLevel::Minimal,
        ThinkingLevel::Low => pb::ThinkingLevel::Low,
        ThinkingLevel::Medium => pb::ThinkingLevel::Medium,
        ThinkingLevel::High => pb::ThinkingLevel::High,
    }) as i32
}

/// An optional enum from the wire: 0 (UNSPECIFIED) is "not given", an unknown number a 400.
fn given<E: TryFrom<i32>>(value: i32, field: &str) -> Result<Option<E>, GatewayError> {
    if value == 0 {
        return Ok(None);
    }
    E::try_from(value)
        .map(Some)
        .map_err(|_| GatewayError::invalid(format!("Unknown {field} value {value}")))
}

pub fn memory_bucket(bucket: MemoryBucket) -> pb::MemoryBucket {
    match bucket {
        MemoryBucket::Core => pb::MemoryBucket::Core,
        MemoryBucket::Archival => pb::MemoryBucket::Archival,
    }
}

pub fn memory_bucket_from(value: i32) -> Result<Option<MemoryBucket>, GatewayError> {
    Ok(match given(value, "bucket")? {
        None | Some(pb::MemoryBucket::Unspecified) => None,
        Some(pb::MemoryBucket::Core) => Some(MemoryBucket::Core),
        Some(pb::MemoryBucket::Archival) => Some(MemoryBucket::Archival),
    })
}

pub fn memory_kind(kind: MemoryKind) -> pb::MemoryKind {
    match kind {
        MemoryKind::Profile => pb::MemoryKind::Profile,
        MemoryKind::Preference => pb::MemoryKind::Preference,
        MemoryKind::Relationship => pb::MemoryKind::Relationship,
        MemoryKind::Fact => pb::MemoryKind::Fact,
        MemoryKind::Secret => pb::MemoryKind::Secret,
    }
}

pub fn memory_kind_from(value: i32) -> Result<Option<MemoryKind>, GatewayError> {
    Ok(match given(value, "kind")? {
        None | Some(pb::MemoryKind::Unspecified) => None,
        Some(pb::MemoryKind::Profile) => Some(MemoryKind::Profile),
        Some(pb::MemoryKind::Preference) => Some(MemoryKind::Preference),
        Some(pb::MemoryKind::Relationship) => Some(MemoryKind::Relationship),
        Some(pb::MemoryKind::Fact) => Some(MemoryKind::Fact),
        Some(pb::MemoryKind::Secret) => Some(MemoryKind::Secret),
    })
}

pub fn memory_source(source: MemorySource) -> pb::MemorySource {
    match source {
        MemorySource::Manual => pb::MemorySource::Manual,
        MemorySource::Auto => pb::MemorySource::Auto,
        MemorySource::Tool => pb::MemorySource::Tool,
    }
}

pub fn hit_source(source: HitSource) -> pb::SearchSourceType {
    match source {
        HitSource::Memory => pb::SearchSourceType::Memory,
        HitSource::Episode => pb::SearchSourceType::Episode,
    }
}

fn usage(usage: Usage) -> pb::Usage {
    pb::Usage { input_tokens: usage.input_tokens, output_tokens: usage.output_tokens }
}

pub fn snapshot(s: Snapshot) -> pb::SessionSnapshot {
    pb::SessionSnapshot {
        session_key: s.session_key,
        session_id: s.session_id,
        name: s.name,
        message_count: s.message_count as u32,
        queue_depth: s.queue_depth as u32,
        processing: s.processing,
        loaded: s.loaded,
        created_at: s.created_at,
        updated_at: s.updated_at,
        last_active_at: s.last_active_at,
        last_message_preview: s.last_message_preview,
        model_provider: s.model_provider,
        model_id: s.model_id,
        thinking_level: thinking(s.thinking_level),
        usage: Some(usage(s.usage)),
    }
}

fn part(part: Part) -> pb::Part {
    use pb::part::Kind as P;
    let kind = match part {
        Part::Text { text } => P::Text(pb::TextPart { text }),
        Part::Reasoning { text } => P::Reasoning(pb::ReasoningPart { text }),
        Part::ToolInvocation { tool_call_id, tool_name, args, state, result } => {
            P::ToolInvocation(pb::ToolInvocationPart {
                tool_call_id,
                tool_name,
                args: Some(json(&args)),
                state: match state {
                    ToolState::Call => pb::ToolInvocationState::Call,
                    ToolState::Result => pb::ToolInvocationState::Result,
                    ToolState::Error => pb::ToolInvocationState::Error,
                } as i32,
                result: result.as_ref().map(json),
            })
        }
        Part::Media { url, mime_type } => P::Media(pb::MediaPart { url, mime_type }),
        Part::Error { code, message } => P::Error(pb::ErrorPart { code, message }),
    };
    pb::Part { kind: Some(kind) }
}

pub fn message(m: HistoryMessage) -> pb::HistoryMessage {
    pb::HistoryMessage {
        id: m.id,
        role: match m.role {
            Role::User => pb::Role::User,
            Role::Assistant => pb::Role::Assistant,
            Role::ToolResult => pb::Role::ToolResult,
        } as i32,
        parts: m.parts.into_iter().map(part).collect(),
        timestamp: m.timestamp,
    }
}

pub fn event(event: &Event) -> pb::Event {
    use pb::event::Kind as K;
    let kind = match &event.kind {
        EventKind::Hello { snapshot: s } => {
            K::Hello(pb::Hello { snapshot: Some(snapshot((**s).clone())) })
        }
        EventKind::Lagged { missed } => K::Lagged(pb::Lagged { missed: *missed }),
        EventKind::SessionState { snapshot: s } => {
            K::SessionState(pb::SessionState { snapshot: Some(snapshot((**s).clone())) })
        }
        EventKind::AgentStart { message_id } => {
            K::AgentStart(pb::AgentStart { message_id: message_id.clone() })
        }
        EventKind::TurnStart => K::TurnStart(pb::TurnStart {}),
        EventKind::TurnEnd => K::TurnEnd(pb::TurnEnd {}),
        EventKind::MessageStart { role } => {
            K::MessageStart(pb::MessageStart { role: role.clone() })
        }
        EventKind::Token { delta, content_index } => {
            K::Token(pb::Token { delta: delta.clone(), content_index: *content_index })
        }
        EventKind::Thinking { delta, content_index } => {
            K::Thinking(pb::Thinking { delta: delta.clone(), content_index: *content_index })
        }
        EventKind::ToolCallStart { tool_call_id, tool_name } => {
            K::ToolCallStart(pb::ToolCallStart {
                tool_call_id: tool_call_id.clone(),
                tool_name: tool_name.clone(),
            })
        }
        EventKind::ToolCallDelta { tool_call_id, delta } => K::ToolCallDelta(pb::ToolCallDelta {
            tool_call_id: tool_call_id.clone(),
            delta: delta.clone(),
        }),
        EventKind::ToolCallEnd { tool_call_id, tool_name, args } => {
            K::ToolCallEnd(pb::ToolCallEnd {
                tool_call_id: tool_call_id.clone(),
                tool_name: tool_name.clone(),
                args: Some(json(args)),
            })
        }
        EventKind::ToolStart { tool_call_id, tool_name, args } => K::ToolStart(pb::ToolStart {
            tool_call_id: tool_call_id.clone(),
            tool_name: tool_name.clone(),
            args: Some(json(args)),
        }),
        EventKind::ToolUpdate { tool_call_id, tool_name, partial_result } => {
            K::ToolUpdate(pb::ToolUpdate {
                tool_call_id: tool_call_id.clone(),
                tool_name: tool_name.clone(),
                partial_result: Some(json(partial_result)),
            })
        }
        EventKind::ToolComplete { tool_call_id, tool_name, result, is_error } => {
            K::ToolComplete(pb::ToolComplete {
                tool_call_id: tool_call_id.clone(),
                tool_name: tool_name.clone(),
                result: Some(json(result)),
                is_error: *is_error,
            })
        }
        EventKind::MessageComplete { text } => {
            K::MessageComplete(pb::MessageComplete { text: text.clone() })
        }
        EventKind::RetryStart { attempt, max_attempts, delay_ms, error } => {
            K::RetryStart(pb::RetryStart {
                attempt: *attempt,
                max_attempts: *max_attempts,
                delay_ms: *delay_ms,
                error: error.clone(),
            })
        }
        EventKind::RetryEnd { attempt, success } => {
            K::RetryEnd(pb::RetryEnd { attempt: *attempt, success: *success })
        }
        EventKind::CompactionStart { reason } => {
            K::CompactionStart(pb::CompactionStart { reason: reason.clone() })
        }
        EventKind::CompactionEnd { summary_tokens } => {
            K::CompactionEnd(pb::CompactionEnd { summary_tokens: *summary_tokens })
        }
        EventKind::AgentEnd { message_id, ok, error, usage: u, .. } => K::AgentEnd(pb::AgentEnd {
            message_id: message_id.clone(),
            ok: *ok,
            error: error.clone(),
            usage: Some(usage(*u)),
        }),
        EventKind::Error { error, code } => {
            K::Error(pb::Error { error: error.clone(), code: code.clone() })
        }
        EventKind::Aborted => K::Aborted(pb::Aborted {}),
        EventKind::SessionReset { session_id } => {
            K::SessionReset(pb::SessionReset { session_id: session_id.clone() })
        }
        EventKind::SessionDeleted { session_id } => {
            K::SessionDeleted(pb::SessionDeleted { session_id: session_id.clone() })
        }
    };
    pb::Event { session_key: event.session_key.to_string(), seq: event.seq, kind: Some(kind) }
}

pub fn outcome(o: RunOutcome) -> pb::RunResult {
    pb::RunResult {
        ok: o.ok,
        response: o.response,
        error: o.error,
        session_key: o.session_key,
        message_id: o.message_id,
    }
}

pub fn steer_mode(mode: SendMode) -> i32 {
    (match mode {
        SendMode::Queued => pb::SteerMode::Queued,
        SendMode::Steer => pb::SteerMode::Steer,
    }) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_enums_map_both_ways_and_unknown_numbers_are_refused() {
        for bucket in MemoryBucket::ALL {
            let wire = memory_bucket(*bucket) as i32;
            assert_eq!(memory_bucket_from(wire).unwrap(), Some(*bucket));
        }
        for kind in MemoryKind::ALL {
            assert_eq!(memory_kind_from(memory_kind(*kind) as i32).unwrap(), Some(*kind));
        }
        assert_eq!(memory_bucket_from(0).unwrap(), None, "unspecified is not given");
        assert_eq!(memory_kind_from(0).unwrap(), None);
        assert_eq!(memory_kind_from(9).unwrap_err().message, "Unknown kind value 9");
        assert_eq!(memory_bucket_from(-1).unwrap_err().message, "Unknown bucket value -1");
        assert_eq!(memory_source(MemorySource::Tool), pb::MemorySource::Tool);
        assert_eq!(hit_source(HitSource::Episode), pb::SearchSourceType::Episode);
    }
}
