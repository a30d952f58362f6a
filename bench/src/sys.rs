//! The few system calls the benchmarks need that std does not offer: the
//! open-file limit (10,000 feed clients hold 10,000 sockets here and as
//! many in the hub, which inherits this process's limits when started)
//! and signals to a process group this program started (Kamailio).

use std::ffi::c_int;

/// `struct rlimit` on Linux (`rlim_t` is 64 bits wide on every Linux ABI
/// Rust supports with std).
#[repr(C)]
struct Rlimit {
    cur: u64,
    max: u64,
}

/// `RLIMIT_NOFILE` on Linux (x86, x86-64, arm, aarch64, riscv).
const RLIMIT_NOFILE: c_int = 7;
pub const SIGKILL: c_int = 9;

unsafe extern "C" {
    fn getrlimit(resource: c_int, rlim: *mut Rlimit) -> c_int;
    fn setrlimit(resource: c_int, rlim: *const Rlimit) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
}

/// The soft and hard limits of open files of this process.
pub fn nofile() -> (u64, u64) {
    let mut r = Rlimit { cur: 0, max: 0 };
    // SAFETY: `r` is a valid, writable `struct rlimit`.
    if unsafe { getrlimit(RLIMIT_NOFILE, &mut r) } != 0 {
        return (0, 0);
    }
    (r.cur, r.max)
}

/// Raise the soft limit of open files to the hard limit; returns the soft
/// limit now in force. Processes started afterwards (the hub, Kamailio)
/// inherit it.
pub fn raise_nofile() -> u64 {
    let (cur, max) = nofile();
    if cur < max {
        let r = Rlimit { cur: max, max };
        // SAFETY: `r` is a valid `struct rlimit`; only this process's
        // soft limit changes, within its hard limit.
        if unsafe { setrlimit(RLIMIT_NOFILE, &r) } == 0 {
            return max;
        }
    }
    cur
}

/// Send `sig` to every process of the process group `pgid` (a group this
/// program created for a child it started).
pub fn kill_group(pgid: u32, sig: c_int) {
    if pgid > 1 {
        // SAFETY: a plain system call; a negative pid names the group.
        unsafe {
            kill(-(pgid as c_int), sig);
        }
    }
}

/// The open-file limit of another process, from /proc (`Max open files`).
pub fn nofile_of(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Open file descriptors of a process.
pub fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The local port range for outgoing connections (each loopback client
/// connection takes one port of it).
pub fn ephemeral_ports() -> Option<(u32, u32)> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = s.split_whitespace().filter_map(|x| x.parse().ok());
    Some((it.next()?, it.next()?))
}
