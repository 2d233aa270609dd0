//! Servers as child processes (the durability tests and the load benchmarks): start one,
//! learn its address, read its memory and CPU, kill it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts `command` (a server that prints `listening ADDRESS` first) and returns the
/// process with what it printed after `listening `.
pub fn spawn_listening(command: &mut Command) -> (Child, String) {
    try_spawn_listening(command).expect("the server prints `listening ADDRESS` first")
}

/// Starts `command` as `spawn_listening` does; `None`, with the process gone, when it
/// ends before printing `listening ADDRESS` (its address taken, say).
pub fn try_spawn_listening(command: &mut Command) -> Option<(Child, String)> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let line = BufReader::new(stdout).lines().next().and_then(Result::ok);
    match line.as_deref().and_then(|l| l.strip_prefix("listening ")) {
        Some(address) => Some((child, address.to_owned())),
        None => {
            stop(child);
            None
        }
    }
}

/// Kills the process and waits for it.
pub fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident memory now (VmRSS), in bytes.
pub fn rss(child: &Child) -> u64 {
    rss_of(child.id())
}

/// Resident memory now (VmRSS) of the process `pid`, in bytes (from another thread
/// than the one holding its `Child`).
pub fn rss_of(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:") * 1024
}

/// Peak resident memory (VmHWM), in bytes.
pub fn peak_memory(child: &Child) -> u64 {
    status_kb(child.id(), "VmHWM:") * 1024
}

/// Resets the peak resident memory to the current value (Linux `clear_refs` 5).
pub fn reset_peak_memory(child: &Child) {
    let _ = std::fs::write(format!("/proc/{}/clear_refs", child.id()), "5");
}

/// User plus system CPU time of the process, in seconds (clock ticks of 1/100 s).
pub fn cpu_seconds(child: &Child) -> f64 {
    stat_cpu_seconds(
        &std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default(),
    )
}

/// User plus system CPU time of this process, in seconds (clock ticks of 1/100 s).
pub fn own_cpu_seconds() -> f64 {
    stat_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// User plus system CPU time of every process on the machine whose command is `command`
/// (`postgres`: a PostgreSQL server's processes), in seconds.
pub fn cpu_seconds_of(command: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let name = format!("({command})");
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat.contains(&name))
        .map(|stat| stat_cpu_seconds(&stat))
        .sum()
}

/// The CPU seconds in a `/proc/PID/stat` line (`utime` and `stime`).
fn stat_cpu_seconds(stat: &str) -> f64 {
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A settings file for a load benchmark's server in `dir`: the limits on connections per
/// address and per user, on sign-ins per name and on devices per user raised, as for a
/// load balancer in front of many phones of one test account (the benchmarks run every
/// device from one address, often as one user).
pub fn load_settings(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("load.toml");
    std::fs::write(
        &path,
        "[limits]\nconnections_per_address = 100000\nsync_connections_per_user = 100000\nsign_ins_per_name = 100000\ndevices_per_user = 100000\n",
    )
    .expect("settings file");
    path
}
