//! The machine the figures come from, as `BENCHMARKS.md` records it.

use serde::Serialize;

/// Cores, memory and CPU model of this machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// Cores this process may use.
    pub cores: usize,
    /// `MemTotal` from `/proc/meminfo`, in bytes.
    pub memory_bytes: Option<u64>,
    /// The 1, 5 and 15 minute load averages when the run started: other work on the machine
    /// shows up here and in the figures.
    pub load_average: Option<String>,
}

impl Machine {
    /// Reads this machine's description.
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpu_model: field(&cpuinfo, "model name").map(str::to_owned),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: field(&meminfo, "MemTotal")
                .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kib| kib * 1024),
            load_average: load_average(),
        }
    }

    /// One line for the top of the output.
    pub fn summary(&self) -> String {
        let memory = self.memory_bytes.map_or("unknown memory".to_owned(), |b| {
            format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
        });
        format!(
            "{} cores, {memory}, CPU: {}; load average at the start: {}",
            self.cores,
            self.cpu_model.as_deref().unwrap_or("unknown"),
            self.load_average.as_deref().unwrap_or("unknown")
        )
    }
}

/// The 1, 5 and 15 minute load averages, from `/proc/loadavg`.
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(" "))
}

/// The value of the first `key: value` line whose key is `key`.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keyed_lines_of_proc_files() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu\n";
        assert_eq!(field(cpuinfo, "model name"), Some("AMD EPYC"));
        assert_eq!(
            field("MemTotal:       24684680 kB\n", "MemTotal"),
            Some("24684680 kB")
        );
        assert_eq!(field(cpuinfo, "cache size"), None);
    }
}
