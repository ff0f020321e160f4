//! This process's own resource use, read from `/proc/self` on Linux, for the standard
//! Prometheus `process_*` metrics. A few reads of small files per scrape: no crate is
//! worth its build time for this. Elsewhere (or when `/proc` is missing) nothing is
//! reported rather than zeros that would look like real values.

/// CPU time, memory, descriptors and start time of this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub open_fds: u64,
    /// Unix time the process started, in seconds.
    pub start_time_seconds: f64,
}

#[cfg(target_os = "linux")]
pub fn read() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    // SAFETY: sysconf only reads a system constant.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    parse(&stat, &boot, ticks, page, open_fds)
}

#[cfg(not(target_os = "linux"))]
pub fn read() -> Option<ProcessStats> {
    None
}

/// The stats from the text of `/proc/self/stat` and `/proc/stat`, the clock ticks per
/// second and the page size.
pub fn parse(
    stat: &str,
    proc_stat: &str,
    ticks: i64,
    page: i64,
    open_fds: u64,
) -> Option<ProcessStats> {
    if ticks <= 0 || page <= 0 {
        return None;
    }
    // The command name (field 2) is in parentheses and may hold spaces or ')': the
    // fields that follow start after the last ')'. There, field 3 (state) is index 0.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let (utime, stime, start, rss) = (field(14)?, field(15)?, field(22)?, field(24)?);
    let btime: u64 = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let ticks = ticks as f64;
    Some(ProcessStats {
        cpu_seconds: (utime + stime) as f64 / ticks,
        resident_memory_bytes: rss.saturating_mul(page as u64),
        open_fds,
        start_time_seconds: btime as f64 + start as f64 / ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (stat (x) d) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
        250 50 0 0 20 0 7 0 12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 \
        0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn parses_the_fields_after_the_command_name() {
        let s = parse(STAT, "cpu 1 2 3\nbtime 1700000000\n", 100, 4096, 9).expect("parsed");
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.resident_memory_bytes, 2560 * 4096);
        assert_eq!(s.open_fds, 9);
        assert_eq!(s.start_time_seconds, 1_700_000_000.0 + 123.45);
    }

    #[test]
    fn unreadable_text_is_no_stats() {
        assert_eq!(parse("garbage", "btime 1\n", 100, 4096, 1), None);
        assert_eq!(parse(STAT, "no boot time", 100, 4096, 1), None);
        assert_eq!(parse(STAT, "btime 1\n", 0, 4096, 1), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read() {
        let s = read().expect("/proc/self");
        assert!(s.resident_memory_bytes > 0 && s.open_fds > 0 && s.start_time_seconds > 1e9);
    }
}
