//! The CPU deadline of a guest call, counted in the CPU time of the thread
//! that runs it, not in wall-clock time.
//!
//! wasmtime interrupts a guest at epoch ticks (wall-clock). A deadline in
//! wall-clock time would kill a healthy plugin whose thread merely waited
//! for a core on a busy machine (a CPU hog beside the hub, a build); so at
//! each tick the store's callback reads the calling thread's CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`, POSIX.1-2008 `clock_gettime`) and extends
//! the deadline by what is left. Each instance's calls run on its own
//! thread and its host imports only enqueue, so that clock counts the
//! plugin's own work. A call that waits [`CALL_WALL_FACTOR`] times its
//! deadline in wall-clock time ends anyway.

use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

use crate::timing::{CALL_WALL_FACTOR, EPOCH_TICK};

/// The CPU time the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a
    // constant every Linux and POSIX.1-2008 system has.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Why a call was ended at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overrun {
    /// It used its CPU time (an endless loop, or work too big for a call).
    Cpu,
    /// It waited too long in wall-clock time without using it (the machine
    /// is overloaded).
    Wall,
}

/// The clock of the current call.
#[derive(Debug)]
pub struct CallClock {
    limit: Duration,
    cpu_at_start: Duration,
    wall_at_start: Instant,
    /// Set when the callback ended the call.
    pub overrun: Option<Overrun>,
}

impl CallClock {
    pub fn new(limit_ms: u32) -> Self {
        Self {
            limit: Duration::from_millis(limit_ms.into()),
            cpu_at_start: thread_cpu_time(),
            wall_at_start: Instant::now(),
            overrun: None,
        }
    }

    /// Start a call with `limit_ms` of CPU; returns the epoch ticks to arm.
    pub fn start(&mut self, limit_ms: u32) -> u64 {
        *self = Self::new(limit_ms);
        ticks(self.limit)
    }

    /// At an epoch deadline: continue with what is left, or interrupt.
    pub fn at_deadline(&mut self) -> UpdateDeadline {
        let used = thread_cpu_time().saturating_sub(self.cpu_at_start);
        if used >= self.limit {
            self.overrun = Some(Overrun::Cpu);
            return UpdateDeadline::Interrupt;
        }
        if self.wall_at_start.elapsed() >= self.limit * CALL_WALL_FACTOR {
            self.overrun = Some(Overrun::Wall);
            return UpdateDeadline::Interrupt;
        }
        UpdateDeadline::Continue(ticks(self.limit - used))
    }
}

/// Epoch ticks covering `d`, at least one whole tick beyond now.
fn ticks(d: Duration) -> u64 {
    (d.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(d: Duration) {
        let start = thread_cpu_time();
        while thread_cpu_time() - start < d {
            std::hint::black_box(());
        }
    }

    #[test]
    fn waiting_does_not_count_and_working_does() {
        let mut c = CallClock::new(30);
        // Sleeping uses no CPU: the deadline is extended.
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(c.at_deadline(), UpdateDeadline::Continue(_)));
        assert_eq!(c.overrun, None);
        // Working past the limit ends the call.
        spin(Duration::from_millis(35));
        assert!(matches!(c.at_deadline(), UpdateDeadline::Interrupt));
        assert_eq!(c.overrun, Some(Overrun::Cpu));
    }

    #[test]
    fn a_call_that_only_waits_ends_after_its_wall_clock_allowance() {
        let mut c = CallClock::new(1);
        std::thread::sleep(Duration::from_millis(u64::from(CALL_WALL_FACTOR) + 5));
        assert!(matches!(c.at_deadline(), UpdateDeadline::Interrupt));
        assert_eq!(c.overrun, Some(Overrun::Wall));
    }
}
