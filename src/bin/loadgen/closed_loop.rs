//! A closed-loop request driver (as `wrk` and `h2load` are): each of C callers sends its next
//! request as soon as the previous one is answered, for a warm-up and then a measured window.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stats::{Measured, Window};
use crate::target::Server;

/// One caller: one request, answered with the size of the response body.
pub trait Call: Send + 'static {
    fn call(&mut self) -> impl Future<Output = Result<usize, String>> + Send;
}

pub struct Outcome {
    /// Requests answered within the measured window, and their latencies (µs).
    pub measured: u64,
    pub latencies: Vec<i64>,
    /// Every request sent, warm-up included (what the server's metrics count).
    pub sent: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub response_bytes: usize,
    pub window: Measured,
}

pub async fn drive<C: Call>(
    server: &Server,
    callers: Vec<C>,
    warmup: Duration,
    duration: Duration,
) -> Result<Outcome, String> {
    let start = Instant::now();
    let from = start + warmup;
    let until = from + duration;
    let times = Arc::new((from, until));
    let mut tasks = Vec::new();
    for mut caller in callers {
        let times = times.clone();
        tasks.push(tokio::spawn(async move {
            let (from, until) = *times;
            let mut latencies = Vec::new();
            let (mut sent, mut errors, mut bytes, mut first_error) = (0u64, 0u64, 0usize, None);
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                sent += 1;
                match caller.call().await {
                    Ok(size) => {
                        bytes = size;
                        let t1 = Instant::now();
                        if t0 >= from && t1 <= until {
                            latencies.push((t1 - t0).as_micros() as i64);
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (latencies, sent, errors, bytes, first_error)
        }));
    }
    tokio::time::sleep_until(from.into()).await;
    let window = Window::start(server);
    tokio::time::sleep_until(until.into()).await;
    let window = window.end(server);
    let mut outcome = Outcome {
        measured: 0,
        latencies: Vec::new(),
        sent: 0,
        errors: 0,
        first_error: None,
        response_bytes: 0,
        window,
    };
    for task in tasks {
        let (latencies, sent, errors, bytes, first_error) =
            task.await.map_err(|e| e.to_string())?;
        outcome.measured += latencies.len() as u64;
        outcome.latencies.extend(latencies);
        outcome.sent += sent;
        outcome.errors += errors;
        outcome.response_bytes = outcome.response_bytes.max(bytes);
        if outcome.first_error.is_none() {
            outcome.first_error = first_error;
        }
    }
    Ok(outcome)
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        (self.measured as f64 / self.window.seconds).round()
    }

    pub fn json(&mut self) -> serde_json::Value {
        serde_json::json!({
            "requests_per_s": self.rps(),
            "latency": crate::stats::latency_ms(&mut self.latencies),
            "errors": self.errors,
            "first_error": self.first_error,
            "response_bytes": self.response_bytes,
            "cpu": self.window.cpu_json(),
        })
    }
}
