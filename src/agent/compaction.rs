//! Compaction (GATEWAY.md §6): when the context of the next model call nears the model's
//! window, the model summarizes everything before the latest user message, and the session
//! replaces that part of the context (for the model; history keeps it) with the summary.

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::provider::{ModelRequest, ProviderEvent};
use super::registry::ModelEntry;
use super::{Agent, RunHost};
use crate::domain::{EventKind, HistoryMessage, Part, Role, ThinkingLevel, Usage};

const SUMMARY_SYSTEM: &str = "You summarize conversations between a user and an AI assistant \
so that the assistant can continue them without the full transcript.";
const SUMMARY_REQUEST: &str = "Summarize the conversation above: the user's goals and \
preferences, decisions made, facts learned (including tool results that matter), and what is \
still open. Be concise and concrete; this summary replaces the transcript.";

/// A rough token count (4 characters a token, 1,000 per image) of what a model call sends.
pub(super) fn estimate_tokens(system_prompt: &str, messages: &[HistoryMessage]) -> u64 {
    let chars: usize = system_prompt.len()
        + messages
            .iter()
            .flat_map(|m| m.parts.iter())
            .map(|part| match part {
                Part::Text { text } | Part::Reasoning { text } => text.len(),
                Part::ToolInvocation { args, result, .. } => {
                    args.to_string().len() + result.as_ref().map_or(0, |r| r.to_string().len())
                }
                Part::Media { .. } => 4000,
                Part::Error { message, .. } => message.len(),
            })
            .sum::<usize>();
    (chars as u64).div_ceil(4)
}

impl Agent {
    /// The compaction step of a turn: `messages` as they go to the model, compacted first when
    /// they (with `system_prompt`) pass `agent.compact_at_percent` of the model's window and
    /// there is something before the latest user message. The summary's usage joins `usage`.
    /// None when the run was cancelled while compacting.
    pub(super) async fn compacted(
        &self,
        host: &dyn RunHost,
        entry: &ModelEntry,
        system_prompt: &str,
        messages: Vec<HistoryMessage>,
        usage: &mut Usage,
        cancel: &CancellationToken,
    ) -> Option<Vec<HistoryMessage>> {
        let budget = entry.context_window.saturating_mul(self.compact_at_percent) / 100;
        let estimate = estimate_tokens(system_prompt, &messages);
        if estimate <= budget {
            return Some(messages);
        }
        let Some(keep) = messages.iter().rposition(|m| m.role == Role::User).filter(|&k| k > 0)
        else {
            return Some(messages);
        };
        host.emit(EventKind::CompactionStart {
            reason: format!(
                "context of about {estimate} tokens passed {}% of the {} token window",
                self.compact_at_percent, entry.context_window
            ),
        });
        let messages = match self.summarize(entry, &messages[..keep], cancel).await {
            Some((summary, spent)) => {
                *usage += spent;
                let tokens = (summary.len() as u64).div_ceil(4);
                host.compact(&messages[keep].id, summary, tokens);
                host.context()
            }
            None => {
                host.emit(EventKind::CompactionEnd { summary_tokens: 0 });
                messages
            }
        };
        (!cancel.is_cancelled()).then_some(messages)
    }

    /// Asks the model for a summary of `older` (no tools, no thinking). None when it fails
    /// or the run is cancelled: the run then goes on with the whole context.
    async fn summarize(
        &self,
        entry: &ModelEntry,
        older: &[HistoryMessage],
        cancel: &CancellationToken,
    ) -> Option<(String, Usage)> {
        let mut messages = older.to_vec();
        messages.push(HistoryMessage {
            id: "compaction-request".into(),
            role: Role::User,
            parts: vec![Part::Text { text: SUMMARY_REQUEST.into() }],
            timestamp: 0,
        });
        let request = ModelRequest {
            model_id: entry.info.model_id.clone(),
            system_prompt: SUMMARY_SYSTEM.into(),
            messages,
            tools: Vec::new(),
            thinking: ThinkingLevel::Off,
        };
        let mut stream = entry.provider.stream(request);
        let (mut summary, mut usage) = (String::new(), Usage::default());
        let collect = async {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(ProviderEvent::TextDelta { delta, .. }) => summary.push_str(&delta),
                    Ok(ProviderEvent::Usage(u)) => usage += u,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(error = %error.message, "compaction failed");
                        return false;
                    }
                }
            }
            true
        };
        let done = tokio::select! {
            _ = cancel.cancelled() => false,
            done = tokio::time::timeout(self.call_timeout, collect) => done.unwrap_or(false),
        };
        (done && !summary.trim().is_empty()).then(|| (summary.trim().to_string(), usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_counts_four_characters_a_token() {
        let message =
            |parts| HistoryMessage { id: "m".into(), role: Role::User, parts, timestamp: 0 };
        let text = message(vec![Part::Text { text: "x".repeat(40) }]);
        assert_eq!(estimate_tokens("", std::slice::from_ref(&text)), 10);
        assert_eq!(estimate_tokens("abcd", &[text]), 11);
        let image = message(vec![Part::Media { url: "data:".into(), mime_type: None }]);
        assert_eq!(estimate_tokens("", &[image]), 1000);
    }
}
