//! What the kernel knows about a process: CPU time and memory, from /proc.

use std::fs;

/// Clock ticks per second of `utime`/`stime` in /proc/<pid>/stat. Linux
/// reports them in USER_HZ, which is 100 on every architecture it runs on.
const USER_HZ: f64 = 100.0;

/// The fields after `comm` in /proc/<pid>/stat (comm may hold spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// CPU seconds (user + system, all threads, including threads that have
/// ended) a process has used so far; 0 when it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    // After comm: state(0) ppid(1) ... utime(11) stime(12).
    stat_fields(pid)
        .and_then(|f| Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?))
        .map(|ticks| ticks / USER_HZ)
        .unwrap_or(0.0)
}

/// CPU seconds of this process so far.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id())
}

/// Live processes whose process group is `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(f) = stat_fields(pid)
            && f.len() > 2
            && f[0] != "Z"
            && f[0] != "X"
            && f[2].parse::<u32>().ok() == Some(pgid)
        {
            out.push(pid);
        }
    }
    out
}

/// CPU seconds of every live process whose name (`comm`) is `name`, for
/// example every PostgreSQL process (backends that ended are not counted:
/// measure over connections that stay open).
pub fn named_cpu_seconds(name: &str) -> f64 {
    let Ok(rd) = fs::read_dir("/proc") else {
        return 0.0;
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .map(cpu_seconds)
        .sum()
}

/// CPU seconds of every live process in a process group.
pub fn group_cpu_seconds(pgid: u32) -> f64 {
    group_members(pgid).into_iter().map(cpu_seconds).sum()
}

/// A `kB` field of /proc/<pid>/status, in bytes.
fn status_kb(pid: u32, field: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let rest = l.strip_prefix(field)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse::<u64>().ok()
            })
        })
        .unwrap_or(0)
        * 1024
}

/// Resident set size in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    status_kb(pid, "VmRSS")
}

/// Peak resident set size in bytes.
pub fn hwm_bytes(pid: u32) -> u64 {
    status_kb(pid, "VmHWM")
}

/// The kernel's count of UDP datagrams dropped because a socket's receive
/// buffer was full (all sockets, from /proc/net/snmp `Udp: RcvbufErrors`).
pub fn udp_rcvbuf_errors() -> u64 {
    let Ok(snmp) = fs::read_to_string("/proc/net/snmp") else {
        return 0;
    };
    let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
    if udp.len() < 2 {
        return 0;
    }
    let names: Vec<&str> = udp[0].split_whitespace().collect();
    let values: Vec<&str> = udp[1].split_whitespace().collect();
    names
        .iter()
        .position(|n| *n == "RcvbufErrors")
        .and_then(|i| values.get(i)?.parse().ok())
        .unwrap_or(0)
}

/// The machine: processors, CPU model, memory, kernel.
pub fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|x| x.1))
        .unwrap_or("unknown CPU")
        .trim()
        .to_string();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
        })
        .unwrap_or(0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} × {model}, {:.1} GiB RAM, Linux {}",
        mem as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> (f64, f64, f64) {
    let s = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let v: Vec<f64> = s
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    match v.as_slice() {
        [a, b, c] => (*a, *b, *c),
        _ => (0.0, 0.0, 0.0),
    }
}
