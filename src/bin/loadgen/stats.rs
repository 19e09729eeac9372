//! Summaries loadgen prints: latency percentiles, rates, and the CPU and memory a server used
//! over a measured window.

use std::time::Instant;

use serde_json::{Value, json};

use crate::target::{Memory, Server, cpu_seconds};

/// p50, p99 and max of samples in microseconds, as milliseconds; `null` fields when empty.
pub fn latency_ms(samples: &mut [i64]) -> Value {
    if samples.is_empty() {
        return json!({"count": 0, "p50_ms": null, "p99_ms": null, "max_ms": null});
    }
    samples.sort_unstable();
    let at = |p: f64| {
        let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
        round3(samples[index] as f64 / 1e3)
    };
    json!({
        "count": samples.len(),
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "max_ms": round3(*samples.last().expect("not empty") as f64 / 1e3),
    })
}

pub fn round3(value: f64) -> f64 {
    (value * 1e3).round() / 1e3
}

pub fn mib(bytes: f64) -> f64 {
    round3(bytes / (1024.0 * 1024.0))
}

/// CPU seconds of a server and of loadgen, and the wall time, over one measured window.
pub struct Window {
    started: Instant,
    server_cpu: (f64, f64),
    client_cpu: f64,
    memory: Memory,
}

/// What a window measured.
pub struct Measured {
    pub seconds: f64,
    /// User plus system time.
    pub server_cpu: f64,
    pub server_sys: f64,
    pub client_cpu: f64,
    pub memory_before: Memory,
    pub memory_after: Memory,
}

impl Window {
    pub fn start(server: &Server) -> Self {
        Self {
            started: Instant::now(),
            server_cpu: server.cpu_seconds(),
            client_cpu: total(cpu_seconds("/proc/self/stat")),
            memory: server.memory(),
        }
    }

    pub fn end(self, server: &Server) -> Measured {
        let (user, sys) = server.cpu_seconds();
        Measured {
            seconds: self.started.elapsed().as_secs_f64(),
            server_cpu: total((user, sys)) - total(self.server_cpu),
            server_sys: sys - self.server_cpu.1,
            client_cpu: total(cpu_seconds("/proc/self/stat")) - self.client_cpu,
            memory_before: self.memory,
            memory_after: server.memory(),
        }
    }
}

fn total((user, sys): (f64, f64)) -> f64 {
    user + sys
}

impl Measured {
    /// CPU use of both sides, as a share of one core, and whether loadgen rather than the
    /// server was the limit (loadgen near a full core while the server was not).
    pub fn cpu_json(&self) -> Value {
        let server = self.server_cpu / self.seconds;
        let client = self.client_cpu / self.seconds;
        json!({
            "server_cpu_s": round3(self.server_cpu),
            "server_sys_share": round3(self.server_sys / self.server_cpu.max(0.01)),
            "server_cpu_util": round3(server),
            "loadgen_cpu_util": round3(client),
            "loadgen_bound": client > 0.9 && server < 0.85,
        })
    }

    pub fn memory_json(&self) -> Value {
        json!({
            "rss_before_mib": mib(self.memory_before.rss as f64),
            "rss_after_mib": mib(self.memory_after.rss as f64),
            "rss_peak_mib": mib(self.memory_after.hwm as f64),
        })
    }
}

/// A cross-check of one of loadgen's counts against the gateway's `/metrics`.
pub fn check(name: &str, expected: f64, got: f64) -> (bool, Value) {
    let ok = (expected - got).abs() < 0.5;
    (ok, json!({"metric": name, "expected": expected, "got": got, "ok": ok}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut samples: Vec<i64> = (1..=100).map(|i| i * 1000).collect();
        let summary = latency_ms(&mut samples);
        assert_eq!(summary["p50_ms"], 51.0);
        assert_eq!(summary["p99_ms"], 99.0);
        assert_eq!(summary["max_ms"], 100.0);
        assert_eq!(latency_ms(&mut [])["count"], 0);
    }
}
