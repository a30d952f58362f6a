//! A CPU hog beside the hub: a child process (this program started again
//! with `--hog-child SECS`) that spins on one core. It stops by itself
//! after its time limit or when this program goes away, and is killed when
//! the [`Hog`] is dropped, so it never outlives the row it was started for.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procfs;

/// The argument that makes this program a hog.
pub const CHILD_ARG: &str = "--hog-child";

/// A running hog.
pub struct Hog {
    child: Child,
    started: Instant,
    cpu0: f64,
}

impl Hog {
    /// Start a hog that ends by itself after `limit` at the latest.
    pub fn start(limit: Duration) -> anyhow::Result<Hog> {
        let exe = std::env::current_exe()?;
        let child = Command::new(exe)
            .arg(CHILD_ARG)
            .arg(format!("{:.0}", limit.as_secs_f64().ceil()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let cpu0 = procfs::cpu_seconds(child.id());
        Ok(Hog {
            child,
            started: Instant::now(),
            cpu0,
        })
    }

    /// The share of one core the hog has used since it started (1.0: a
    /// whole core).
    pub fn share(&self) -> f64 {
        let cpu = procfs::cpu_seconds(self.child.id()) - self.cpu0;
        cpu / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    /// Stop it; returns the share of a core it used.
    pub fn stop(mut self) -> f64 {
        let share = self.share();
        let _ = self.child.kill();
        let _ = self.child.wait();
        share
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hog's own life: spin for `secs` seconds, or until the parent is
/// gone.
pub fn child_main(secs: &str) -> std::process::ExitCode {
    let limit = Duration::from_secs(secs.parse::<u64>().unwrap_or(60).min(30 * 60));
    let parent = std::os::unix::process::parent_id();
    let start = Instant::now();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while start.elapsed() < limit {
        for _ in 0..1_000_000 {
            x = std::hint::black_box(x.rotate_left(5) ^ x.wrapping_mul(31));
        }
        if std::os::unix::process::parent_id() != parent {
            break;
        }
    }
    std::process::ExitCode::SUCCESS
}
