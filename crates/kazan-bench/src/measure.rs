//! What a consumer process costs, read inside that process: CPU seconds (user + system) from
//! `getrusage(RUSAGE_SELF)` and peak resident memory from `/proc/self/status` (`VmHWM`). The Python
//! consumer reads the same two sources, so every consumer is measured the same way.

use nix::sys::resource::{UsageWho, getrusage};

/// User plus system CPU seconds this process has used so far (0 if the kernel will not say).
pub fn cpu_seconds() -> f64 {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let seconds = |tv: nix::sys::time::TimeVal| {
                tv.tv_sec() as f64 + f64::from(i32::try_from(tv.tv_usec()).unwrap_or(0)) / 1e6
            };
            seconds(usage.user_time()) + seconds(usage.system_time())
        }
        Err(_) => 0.0,
    }
}

/// The peak resident set size of this process so far, in bytes: `VmHWM`, or `ru_maxrss` where
/// `/proc` is not mounted.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| vm_hwm_bytes(&status))
        .unwrap_or_else(|| {
            getrusage(UsageWho::RUSAGE_SELF)
                .map(|usage| u64::try_from(usage.max_rss()).unwrap_or(0) * 1024)
                .unwrap_or(0)
        })
}

/// The resident set size of this process now (`VmRSS`), in bytes (0 if `/proc` will not say).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| status_bytes(&status, "VmRSS:"))
        .unwrap_or(0)
}

/// `VmHWM` from the text of a `/proc/<pid>/status` file, in bytes.
pub fn vm_hwm_bytes(status: &str) -> Option<u64> {
    status_bytes(status, "VmHWM:")
}

/// The value of the `key` line (e.g. `VmRSS:`) of a `/proc/<pid>/status` text, in bytes.
fn status_bytes(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    let kib: u64 = line
        .trim_start_matches(key)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_high_water_mark_from_proc_status() {
        let status = "Name:\tkazan-bench\nVmPeak:\t  20000 kB\nVmHWM:\t    9216 kB\nVmRSS:\t 9000 kB\n";
        assert_eq!(vm_hwm_bytes(status), Some(9216 * 1024));
        assert_eq!(vm_hwm_bytes("Name:\tx\n"), None);
        assert_eq!(status_bytes(status, "VmRSS:"), Some(9000 * 1024));
    }

    #[test]
    fn this_process_has_used_some_cpu_and_memory() {
        let mut spin = 0u64;
        for i in 0..1_000_000u64 {
            spin = spin.wrapping_add(i * i);
        }
        assert_ne!(spin, 1);
        assert!(cpu_seconds() > 0.0);
        assert!(peak_rss_bytes() > 1024 * 1024);
    }
}
