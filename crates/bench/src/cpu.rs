//! The CPU time a system's processes use, from `/proc/<pid>/stat`: measured per request it
//! tells two builds apart on a machine whose throughput swings with whatever else runs there
//! (a run that loses the CPU to another process loses throughput, not CPU per request).

/// User plus system CPU seconds `pid` has used, or `None` where `/proc` cannot say (the
/// process is gone, or this is not Linux).
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // In clock ticks of USER_HZ, which Linux fixes at 100 for everything it reports to user
    // space.
    Some(ticks as f64 / 100.0)
}

/// The CPU seconds of all of `pids` together; `None` if any cannot be read.
pub fn total_cpu_seconds(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|pid| process_cpu_seconds(*pid)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu_and_a_missing_one_has_none() {
        let before = process_cpu_seconds(std::process::id()).expect("this process's stat");
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = process_cpu_seconds(std::process::id()).expect("this process's stat");
        assert!(after - before >= 0.1, "{before} then {after}");
        assert_eq!(process_cpu_seconds(u32::MAX), None);
        assert_eq!(total_cpu_seconds(&[std::process::id(), u32::MAX]), None);
    }
}
