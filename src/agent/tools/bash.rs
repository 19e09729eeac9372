//! `bash`: runs a command in the workspace, in the [`Sandbox`] (kernel confinement and a
//! scrubbed environment: no API keys, no gateway settings), with a timeout, partial output
//! streamed as `tool_update`, and its whole process group killed when the command ends, times
//! out, or the run is aborted (the tool's future is dropped then, and with it the child).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::{Tool, ToolContext, ToolOutput, parse_args, truncate};
use crate::agent::provider::ToolSpec;
use crate::agent::sandbox::Sandbox;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Partial output goes out at most this often.
const UPDATE_EVERY: Duration = Duration::from_millis(200);

pub struct Bash {
    spec: ToolSpec,
    sandbox: Arc<Sandbox>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BashArgs {
    command: String,
    /// Seconds; default 120, at most 600.
    timeout: Option<u64>,
}

impl Bash {
    pub fn new(sandbox: Arc<Sandbox>) -> Self {
        let spec = ToolSpec {
            name: "bash".into(),
            description: "Run a bash command in the workspace directory. Returns stdout and \
                          stderr (long output keeps its end) and the exit code. Optional \
                          timeout in seconds (default 120, max 600)."
                .into(),
            parameters: json!({"type": "object", "properties": {
                "command": {"type": "string"},
                "timeout": {"type": "integer", "minimum": 1, "maximum": 600}
            }, "required": ["command"], "additionalProperties": false}),
        };
        Self { spec, sandbox }
    }

    async fn run(&self, args: Value, ctx: ToolContext<'_>) -> ToolOutput {
        let args: BashArgs = match parse_args("bash", args) {
            Ok(args) => args,
            Err(refused) => return refused,
        };
        let timeout =
            args.timeout.map(Duration::from_secs).unwrap_or(DEFAULT_TIMEOUT).min(MAX_TIMEOUT);
        // Kills the whole process group when dropped: on abort, timeout, or after it exited
        // (so background children do not outlive it).
        let mut spawned =
            match self.sandbox.command("bash").arg("-c").arg(&args.command).spawn().await {
                Ok(spawned) => spawned,
                Err(e) => return ToolOutput::error(format!("Cannot run bash: {e}")),
            };
        let child = &mut spawned.child;
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        if let Some(stdout) = child.stdout.take() {
            forward(stdout, tx.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            forward(stderr, tx.clone());
        }
        drop(tx);
        let mut output = Vec::new();
        let mut last_update = Instant::now();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let status = loop {
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some(chunk) => {
                        output.extend_from_slice(&chunk);
                        if last_update.elapsed() >= UPDATE_EVERY {
                            last_update = Instant::now();
                            let text = truncate(&String::from_utf8_lossy(&output), true);
                            (ctx.update)(ToolOutput::text(text).result);
                        }
                    }
                    // Both pipes closed: the command is done with its output.
                    None => break child.wait().await,
                },
                status = child.wait() => {
                    // Whatever is still buffered in the pipes comes next; a background child
                    // holding them open does not keep the tool waiting.
                    let drain = async { while let Some(chunk) = rx.recv().await { output.extend_from_slice(&chunk); } };
                    let _ = tokio::time::timeout(Duration::from_millis(200), drain).await;
                    break status;
                }
                _ = &mut deadline => {
                    let text = String::from_utf8_lossy(&output).into_owned();
                    return ToolOutput::error(format!(
                        "{}\nCommand timed out after {} s and was killed",
                        truncate(&text, true),
                        timeout.as_secs()
                    ));
                }
            }
        };
        let text = truncate(&String::from_utf8_lossy(&output), true);
        match status {
            Ok(status) if status.success() => {
                ToolOutput::text(if text.is_empty() { "(no output)".to_string() } else { text })
            }
            Ok(status) => {
                let code = status.code().map_or("a signal".to_string(), |c| c.to_string());
                ToolOutput::error(format!("{text}\nExit code {code}"))
            }
            Err(e) => ToolOutput::error(format!("{text}\nCannot wait for bash: {e}")),
        }
    }
}

/// Sends what `reader` yields, chunk by chunk, until it ends.
fn forward(
    mut reader: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    tx: mpsc::UnboundedSender<Vec<u8>>,
) {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 8192];
        while let Ok(read) = reader.read(&mut buffer).await {
            if read == 0 || tx.send(buffer[..read].to_vec()).is_err() {
                break;
            }
        }
    });
}

impl Tool for Bash {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call<'a>(&'a self, args: Value, ctx: ToolContext<'a>) -> BoxFuture<'a, ToolOutput> {
        Box::pin(self.run(args, ctx))
    }
}
