//! The built-in `echo` model: deterministic, no network, streams its reply token by token.
//!
//! It answers the newest user message with that message's text. Lines of the message that are
//! directives change what it does, so that every event of a run comes from real code paths:
//!
//! | line | effect |
//! | --- | --- |
//! | `!think` | streams a reasoning block before answering |
//! | `!tool <name> <json args>` | calls the tool first (one line per call; several run in order), then answers with the text and each tool's result |
//! | `!delay <ms>` | waits this long before each token (default `agent.echo_token_delay`) |
//! | `!repeat <n>` | repeats the reply n times (large outputs) |
//! | `!fail <message>` | the model call fails with this message |
//! | `!stamp` | each reply token starts with the time it was emitted, in Unix microseconds, and `@` (`1767225600123456@hello `), so a client can measure the latency a token gains on its way |
//!
//! Directive lines are removed from the reply; any other line starting with `!` is plain text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde_json::Value;

use super::provider::{
    ModelInfo, ModelRequest, Provider, ProviderError, ProviderEvent, ProviderStream,
};
use super::tools::result_text;
use crate::domain::{HistoryMessage, Part, Role, Usage};

pub struct EchoProvider {
    token_delay: Duration,
}

impl EchoProvider {
    pub fn new(token_delay: Duration) -> Self {
        Self { token_delay }
    }
}

#[derive(Debug, Default, PartialEq)]
struct Directives {
    think: bool,
    tools: Vec<(String, Value)>,
    delay: Option<Duration>,
    repeat: usize,
    fail: Option<String>,
    stamp: bool,
    text: String,
}

fn parse(message: &str) -> Directives {
    let mut d = Directives { repeat: 1, ..Default::default() };
    let mut text = Vec::new();
    for line in message.lines() {
        let trimmed = line.trim_start();
        let (word, rest) = match trimmed.strip_prefix('!') {
            Some(body) => body.split_once(' ').unwrap_or((body, "")),
            None => {
                text.push(line);
                continue;
            }
        };
        let rest = rest.trim();
        match word {
            "think" => d.think = true,
            "tool" => {
                let (name, args) = rest.split_once(' ').unwrap_or((rest, "{}"));
                let args = serde_json::from_str(args.trim()).unwrap_or(Value::String(args.into()));
                d.tools.push((name.to_string(), args));
            }
            "stamp" => d.stamp = true,
            "delay" => d.delay = rest.parse().ok().map(Duration::from_millis),
            "repeat" => d.repeat = rest.parse().unwrap_or(1).clamp(1, 1_000_000),
            "fail" => {
                d.fail = Some(if rest.is_empty() { "echo failure".into() } else { rest.into() })
            }
            _ => text.push(line),
        }
    }
    d.text = text.join("\n").trim().to_string();
    d
}

/// Splits text into tokens that keep their trailing whitespace, so they concatenate back.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_space = false;
    for ch in text.chars() {
        if ch.is_whitespace() {
            in_space = true;
        } else if in_space {
            out.push(std::mem::take(&mut current));
            in_space = false;
        }
        current.push(ch);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// What the model does this turn, decided from the context.
fn plan(messages: &[HistoryMessage]) -> (Directives, Vec<(String, String)>) {
    let last_user = messages.iter().rposition(|m| m.role == Role::User);
    let Some(index) = last_user else {
        return (Directives { repeat: 1, ..Default::default() }, Vec::new());
    };
    let directives = parse(&messages[index].text());
    // Tool results that answered this user message's calls.
    let results = messages[index + 1..]
        .iter()
        .filter(|m| m.role == Role::ToolResult)
        .flat_map(|m| m.parts.iter())
        .filter_map(|part| match part {
            Part::ToolInvocation { tool_name, result: Some(result), .. } => {
                Some((tool_name.clone(), result_text(result)))
            }
            _ => None,
        })
        .collect();
    (directives, results)
}

impl Provider for EchoProvider {
    fn name(&self) -> &str {
        "echo"
    }

    fn models(&self) -> Vec<ModelInfo> {
        vec![ModelInfo {
            provider: "echo".into(),
            model_id: "echo".into(),
            display_name: "Echo (built in)".into(),
            capabilities: vec!["reasoning".into(), "tools".into()],
        }]
    }

    fn stream(&self, request: ModelRequest) -> ProviderStream {
        let (d, results) = plan(&request.messages);
        let delay = d.delay.unwrap_or(self.token_delay);
        let input_tokens: u64 =
            request.messages.iter().map(|m| m.text().split_whitespace().count() as u64).sum();
        let call_tools = !d.tools.is_empty() && results.is_empty();
        let stream = async_stream::stream! {
            if let Some(message) = d.fail {
                yield Err(ProviderError::fatal(message));
                return;
            }
            let mut output_tokens = 0u64;
            let mut content_index = 0u32;
            if d.think && (call_tools || d.tools.is_empty()) {
                let thought = format!("The user wrote {} characters; I will echo them.", d.text.chars().count());
                for token in tokens(&thought) {
                    pause(delay).await;
                    output_tokens += 1;
                    yield Ok(ProviderEvent::ThinkingDelta { content_index, delta: token });
                }
                content_index += 1;
            }
            if call_tools {
                for (name, args) in d.tools {
                    let id = format!("call_{}", uuid::Uuid::new_v4().simple());
                    yield Ok(ProviderEvent::ToolCallStart { id: id.clone(), name: name.clone() });
                    // Stream the argument JSON in two fragments, as real providers do.
                    let json = args.to_string();
                    let cut = json.char_indices().nth(json.chars().count() / 2).map_or(0, |(i, _)| i);
                    for fragment in [&json[..cut], &json[cut..]] {
                        pause(delay).await;
                        output_tokens += 1;
                        yield Ok(ProviderEvent::ToolCallDelta { id: id.clone(), delta: fragment.to_string() });
                    }
                    yield Ok(ProviderEvent::ToolCallEnd { id, name, args });
                }
            } else {
                let mut reply = if d.text.is_empty() { "(empty message)".to_string() } else { d.text };
                for (name, text) in &results {
                    reply.push_str(&format!("\n\nTool {name} returned:\n{text}"));
                }
                let pieces = tokens(&reply);
                for round in 0..d.repeat {
                    for (i, token) in pieces.iter().enumerate() {
                        pause(delay).await;
                        output_tokens += 1;
                        let mut delta = if d.stamp {
                            // Taken after the pause: the moment the token leaves the model.
                            format!("{}@{token}", unix_micros())
                        } else {
                            token.clone()
                        };
                        if i + 1 == pieces.len() && round + 1 < d.repeat {
                            delta.push(' ');
                        }
                        yield Ok(ProviderEvent::TextDelta { content_index, delta });
                    }
                }
            }
            yield Ok(ProviderEvent::Usage(Usage { input_tokens, output_tokens }));
        };
        stream.boxed()
    }
}

fn unix_micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros())
}

async fn pause(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_parsed_and_removed() {
        let d = parse("hello\n!think\n!tool read {\"path\":\"a.txt\"}\n!delay 5\n!nope x\nworld");
        assert!(d.think);
        assert_eq!(d.tools, vec![("read".to_string(), serde_json::json!({"path": "a.txt"}))]);
        assert_eq!(d.delay, Some(Duration::from_millis(5)));
        assert_eq!(d.text, "hello\n!nope x\nworld");
    }

    #[tokio::test]
    async fn stamp_prefixes_each_reply_token_with_its_emit_time() {
        assert!(parse("!stamp\nhi").stamp);
        let message = HistoryMessage {
            id: "u1".into(),
            role: Role::User,
            parts: vec![Part::Text { text: "!stamp\n!repeat 2\nhello world".into() }],
            timestamp: 0,
        };
        let request = ModelRequest {
            model_id: "echo".into(),
            system_prompt: String::new(),
            messages: vec![message],
            tools: Vec::new(),
            thinking: Default::default(),
        };
        let before = unix_micros();
        let events: Vec<_> = EchoProvider::new(Duration::ZERO).stream(request).collect().await;
        let after = unix_micros();
        let mut stamps = Vec::new();
        let mut text = String::new();
        for event in events {
            if let Ok(ProviderEvent::TextDelta { delta, .. }) = event {
                let (stamp, token) = delta.split_once('@').expect("a stamped token");
                stamps.push(stamp.parse::<u128>().expect("Unix microseconds"));
                text.push_str(token);
            }
        }
        assert_eq!(text, "hello world hello world");
        assert_eq!(stamps.len(), 4);
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "emit times never go back: {stamps:?}");
        assert!(before <= stamps[0] && stamps[3] <= after);
    }

    #[test]
    fn tokens_concatenate_back() {
        let text = "Hi there,  how\nare you?";
        assert_eq!(tokens(text).concat(), text);
        assert_eq!(tokens(text).len(), 5);
    }
}
