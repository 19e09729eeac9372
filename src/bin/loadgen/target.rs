//! The servers loadgen measures: a gateway (started here with the settings a scenario needs,
//! or one already running, named by address and pid) and the bare baseline, with what
//! `/proc/<pid>` says of their CPU time and memory and what `/metrics` says of their work.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::client;

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux ABI we run on:
/// the kernel fixes it for user space whatever its own `HZ`).
const USER_HZ: f64 = 100.0;

/// How loadgen reaches the servers.
#[derive(Clone, Debug)]
pub struct Launch {
    pub gateway_bin: PathBuf,
    pub baseline_bin: PathBuf,
    /// A gateway already running (its address and pid): nothing is started.
    pub attach: Option<(String, u32)>,
    /// `taskset -c <cpus>` for every server started here.
    pub cpus: Option<String>,
    /// `RUST_LOG` of gateways started here.
    pub log: String,
    /// `key=value` settings for every gateway started here, after the scenario's own.
    pub extra: Vec<String>,
    /// A PostgreSQL server (`--store-url`): every gateway started here gets a fresh database
    /// on it instead of SQLite.
    pub store_url: Option<String>,
}

/// A server process under measurement.
pub struct Server {
    pub addr: String,
    /// The baseline's second listener (REST); the gateway serves everything on `addr`.
    pub http_addr: String,
    pub pid: u32,
    child: Option<Child>,
    dir: Option<PathBuf>,
    /// The database made for it on `--store-url`'s server (base URL, its URL), dropped at stop.
    database: Option<(String, String)>,
}

impl Launch {
    /// A fresh database for one gateway when `--store-url` is set.
    pub async fn fresh_database(&self) -> Result<Option<String>, String> {
        match &self.store_url {
            Some(base) => crate::postgres::fresh_database(base).await.map(Some),
            None => Ok(None),
        }
    }

    /// A gateway with these `--set key=value` settings (plus `metrics.public=true`, so loadgen
    /// can read `/metrics`), or the attached one (whose settings are its own).
    pub async fn gateway(&self, settings: &[(&str, String)]) -> Result<Server, String> {
        if let Some((addr, pid)) = &self.attach {
            return Ok(Server {
                addr: addr.clone(),
                http_addr: addr.clone(),
                pid: *pid,
                child: None,
                dir: None,
                database: None,
            });
        }
        let database = self.fresh_database().await?;
        self.gateway_in(scratch_dir("gateway")?, settings, database).await
    }

    /// A gateway over `dir` (its data dir is `dir/data`, which may hold a store made
    /// beforehand) or over `database` (a URL from [`Self::fresh_database`]); both are removed
    /// when the server stops.
    pub async fn gateway_in(
        &self,
        dir: PathBuf,
        settings: &[(&str, String)],
        database: Option<String>,
    ) -> Result<Server, String> {
        let mut args: Vec<String> = vec!["--port".into(), "0".into(), "--data-dir".into()];
        args.push(dir.join("data").display().to_string());
        args.push("--set".into());
        args.push(format!("workspace={}", dir.display()));
        args.push("--set".into());
        args.push("metrics.public=true".into());
        for (key, value) in settings {
            args.push("--set".into());
            args.push(format!("{key}={value}"));
        }
        for setting in &self.extra {
            args.push("--set".into());
            args.push(setting.clone());
        }
        if let Some(url) = &database {
            args.push("--set".into());
            args.push(format!("store_url={url}"));
        }
        // The `listening ... addr=` line is how loadgen learns the port, whatever the filter.
        let filter = format!("{},agent_gateway::server=info", self.log);
        let env = [("RUST_LOG", filter.as_str())];
        let mut server = self.start(&self.gateway_bin, &args, &env, dir).await?;
        server.http_addr = server.addr.clone();
        server.database = database.zip(self.store_url.clone()).map(|(url, base)| (base, url));
        client::wait_healthy(&server.addr).await?;
        Ok(server)
    }

    /// The bare tonic + axum baseline (`hello_baseline`), whose `ListSessions` answers
    /// `list` sessions.
    pub async fn baseline(&self, list: usize) -> Result<Server, String> {
        let dir = scratch_dir("baseline")?;
        let args = ["--port".to_string(), "0".into(), "--list".into(), list.to_string()];
        self.start(&self.baseline_bin, &args, &[], dir).await
    }

    async fn start(
        &self,
        bin: &Path,
        args: &[String],
        env: &[(&str, &str)],
        dir: PathBuf,
    ) -> Result<Server, String> {
        let log_path = dir.join("stderr.log");
        // Its log goes to a file, not a pipe: a pipe nobody drains would stall the server,
        // and draining it would cost loadgen CPU.
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut command = match &self.cpus {
            Some(cpus) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpus).arg(bin);
                command
            }
            None => Command::new(bin),
        };
        command.args(args).envs(env.iter().copied());
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let mut child =
            command.spawn().map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(addr) = field(&text, "addr=") {
                let http_addr = field(&text, "http_addr=").unwrap_or_else(|| addr.clone());
                // `taskset` execs the server, so the child's pid is the server's.
                let pid = child.id();
                return Ok(Server {
                    addr,
                    http_addr,
                    pid,
                    child: Some(child),
                    dir: Some(dir),
                    database: None,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{} exited ({status}):\n{text}", bin.display()));
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                return Err(format!("{} did not listen within 30 s:\n{text}", bin.display()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The value after `name` on the first line that has it, up to the next space.
fn field(text: &str, name: &str) -> Option<String> {
    let start = text.find(name)? + name.len();
    let value: String = text[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    (!value.is_empty()).then_some(value)
}

pub fn scratch_dir(what: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "loadgen-{what}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

impl Server {
    /// CPU seconds (user, system) the process has used so far.
    pub fn cpu_seconds(&self) -> (f64, f64) {
        cpu_seconds(&format!("/proc/{}/stat", self.pid))
    }

    /// Resident set size and its high-water mark, in bytes.
    pub fn memory(&self) -> Memory {
        memory(&format!("/proc/{}/status", self.pid))
    }

    /// `/metrics`, summed by metric name and by `name{labels}`.
    pub async fn metrics(&self) -> Result<Metrics, String> {
        let (status, body) = client::get_once(&self.addr, "/metrics").await?;
        if status != 200 {
            return Err(format!(
                "/metrics answered {status} (start the gateway with metrics.public=true)"
            ));
        }
        Ok(Metrics::parse(&String::from_utf8_lossy(&body)))
    }

    /// Stops a server started here (SIGTERM, then SIGKILL after 10 s) and removes its dir.
    pub async fn stop(mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((base, url)) = self.database.take() {
            crate::postgres::drop_database(&base, &url).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU seconds (user, system) of a process (`/proc/<pid>/stat`) or of loadgen itself
/// (`/proc/self/stat`).
pub fn cpu_seconds(stat_path: &str) -> (f64, f64) {
    let text = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the command name (which may hold spaces and parentheses): state is
    // field 3, utime 14, stime 15.
    let rest = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) / USER_HZ, ticks(12) / USER_HZ)
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

fn memory(status_path: &str) -> Memory {
    let text = std::fs::read_to_string(status_path).unwrap_or_default();
    let kib = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |v| v * 1024)
    };
    Memory { rss: kib("VmRSS:"), hwm: kib("VmHWM:") }
}

/// A scrape of `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// By metric name (labels summed away).
    pub by_name: HashMap<String, f64>,
    /// By the full series, `name{labels}` as written.
    pub series: HashMap<String, f64>,
}

impl Metrics {
    fn parse(text: &str) -> Self {
        let mut metrics = Metrics::default();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let name = series.split('{').next().unwrap_or(series).to_string();
            *metrics.by_name.entry(name).or_default() += value;
            metrics.series.insert(series.to_string(), value);
        }
        metrics
    }

    pub fn get(&self, name: &str) -> f64 {
        self.by_name.get(name).copied().unwrap_or(0.0)
    }

    /// `gateway_requests_total` of one route (pattern or gRPC method) and status.
    pub fn requests(&self, route: &str, status: &str) -> f64 {
        let series = format!("gateway_requests_total{{route=\"{route}\",status=\"{status}\"}}");
        self.series.get(&series).copied().unwrap_or(0.0)
    }

    /// The allocator gauges, when the gateway was built with the `jemalloc` feature.
    pub fn allocator(&self) -> Option<(f64, f64)> {
        Some((
            *self.by_name.get("gateway_allocator_allocated_bytes")?,
            *self.by_name.get("gateway_allocator_resident_bytes")?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_parsed_by_name_and_series() {
        let text = "# HELP x\ngateway_requests_total{route=\"/a\",status=\"200\"} 3\n\
                    gateway_requests_total{route=\"/b\",status=\"200\"} 4\ngateway_runs_started_total 2\n";
        let metrics = Metrics::parse(text);
        assert_eq!(metrics.get("gateway_requests_total"), 7.0);
        assert_eq!(metrics.requests("/a", "200"), 3.0);
        assert_eq!(metrics.get("gateway_runs_started_total"), 2.0);
        assert_eq!(
            field("x INFO listening addr=127.0.0.1:80 scheme", "addr="),
            Some("127.0.0.1:80".into())
        );
    }
}
