//! The real hub binary (release build) under test: start, configure,
//! measure, restart. Built on the end-to-end kit's [`hub_e2e::Hub`], which
//! kills the process when dropped (also when a benchmark panics).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::procfs;
use crate::sipserver;

/// The admin token of every hub the benchmarks start.
pub use hub_e2e::TOKEN;

/// A running hub.
pub struct BenchHub {
    pub hub: hub_e2e::Hub,
}

impl BenchHub {
    /// Start the hub with copies of these `dist/` plugin folders; logs at
    /// `warn` unless `env` says otherwise. The API's connection and feed
    /// caps are raised as an operator would for a wall of consoles: the
    /// fan-out benchmark connects up to 10,000 feed clients with one token
    /// (the hub still lowers the connection cap to its descriptor limit
    /// less its reserve).
    pub fn start(plugins: &[&str], env: &[(&str, &str)]) -> BenchHub {
        let mut all = vec![
            ("HUB_LOG", "warn"),
            ("HUB_MAX_CONNECTIONS", "25000"),
            ("HUB_MAX_FEEDS", "25000"),
            ("HUB_MAX_FEEDS_PER_TOKEN", "25000"),
        ];
        // Profiling aid passed through: plugin function names for `perf`.
        if std::env::var_os("HUB_WASM_PERFMAP").is_some() {
            all.push(("HUB_WASM_PERFMAP", "1"));
        }
        all.extend_from_slice(env);
        let hub = tokio::task::block_in_place(|| hub_e2e::Hub::start(plugins, &all));
        BenchHub { hub }
    }

    /// Kill (SIGKILL) and start again on the same data.
    pub fn restart(&mut self) {
        tokio::task::block_in_place(|| self.hub.restart());
    }

    pub fn pid(&self) -> u32 {
        self.hub.pid().expect("the hub runs")
    }

    pub fn addr(&self) -> SocketAddr {
        self.hub
            .base
            .trim_start_matches("http://")
            .parse()
            .expect("the hub's base URL is http://ip:port")
    }

    pub fn cpu_seconds(&self) -> f64 {
        procfs::cpu_seconds(self.pid())
    }

    pub fn rss(&self) -> u64 {
        procfs::rss_bytes(self.pid())
    }

    pub fn hwm(&self) -> u64 {
        procfs::hwm_bytes(self.pid())
    }

    /// An API call that must succeed (2xx).
    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, v) = self.hub.call(method, path, body).await;
        if !(200..300).contains(&status) {
            bail!("{method} {path}: {status} {v}");
        }
        Ok(v)
    }

    /// Create a sip-simple instance `id` on the benchmark's SIP server.
    pub async fn create_sip(
        &self,
        id: &str,
        server: SocketAddr,
        subscribe: &str,
    ) -> anyhow::Result<()> {
        self.ok(
            "POST",
            "/api/v1/connectors",
            Some(json!({
                "id": id,
                "plugin": "sip-simple",
                "config": {
                    "server": server.to_string(),
                    "uri": format!("hub@{}", sipserver::DOMAIN),
                    "subscribe": subscribe,
                    "expires": 3600,
                }
            })),
        )
        .await?;
        Ok(())
    }

    /// Import users `0..n`; user `i` is watched by instance
    /// `instances[i % len]` at `sip:u<i>@bench.test` (both channels).
    pub async fn import_users(&self, n: usize, instances: &[String]) -> anyhow::Result<()> {
        const CHUNK: usize = 5_000;
        for start in (0..n).step_by(CHUNK) {
            let users: Vec<Value> = (start..(start + CHUNK).min(n))
                .map(|i| {
                    json!({
                        "username": format!("u{i}"),
                        "display_name": format!("Bench User {i}"),
                        "endpoints": { instances[i % instances.len()].clone(): sipserver::user_uri(i) },
                    })
                })
                .collect();
            self.ok("POST", "/api/v1/users/import", Some(Value::Array(users)))
                .await
                .context("import users")?;
        }
        Ok(())
    }

    /// Sum of a metric's series in /metrics.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = self
            .hub
            .http
            .get(self.hub.url("/metrics"))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Wait until instance `id` runs and reports up-and-running.
    pub async fn wait_up(&self, id: &str, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let v = self
                .ok("GET", &format!("/api/v1/connectors/{id}/status"), None)
                .await?;
            let st = v.get("status").unwrap_or(&v);
            if st["run_state"] == "running" && st["status"] == "up-and-running" {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{id} not up within {limit:?}: {v}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `events_dropped` of an instance (datagrams dropped on a full
    /// queue).
    pub async fn events_dropped(&self, id: &str) -> anyhow::Result<u64> {
        let v = self
            .ok("GET", &format!("/api/v1/connectors/{id}/status"), None)
            .await?;
        let st = v.get("status").unwrap_or(&v);
        Ok(st["events_dropped"].as_u64().unwrap_or(0))
    }
}
