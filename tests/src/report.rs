//! Measured times: printed as they are taken (past the test harness's output capture) and
//! appended to `$OUT/test-logs/timings.tsv`.
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::image::log_dir;

/// Append `unix-time<TAB>scenario<TAB>what<TAB>secs` to `dir/timings.tsv`.
pub fn record_in(dir: &Path, scenario: &str, what: &str, took: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let line = format!("{now}\t{scenario}\t{what}\t{:.2}", took.as_secs_f64());
    let _ = std::fs::create_dir_all(dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("timings.tsv"))
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Print `timing: scenario: what = secs` on stderr and [`record_in`] the default log directory.
pub fn record(scenario: &str, what: &str, took: Duration) {
    // Written to the stderr handle directly: `eprintln!` output is captured by libtest.
    let _ = writeln!(
        std::io::stderr(),
        "timing: {scenario}: {what} = {:.2} s",
        took.as_secs_f64()
    );
    record_in(&log_dir(), scenario, what, took);
}

/// Print `measure: scenario: what = value unit` on stderr and append
/// `unix-time<TAB>scenario<TAB>what<TAB>value<TAB>unit` to `$OUT/test-logs/measures.tsv`: figures
/// that are not times (memory, counts).
pub fn record_value(scenario: &str, what: &str, value: f64, unit: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "measure: {scenario}: {what} = {value:.2} {unit}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let dir = log_dir();
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("measures.tsv"))
    {
        let _ = writeln!(f, "{now}\t{scenario}\t{what}\t{value:.2}\t{unit}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_tab_separated_lines() {
        let dir = tempfile::tempdir().unwrap();
        record_in(
            dir.path(),
            "clean-boot",
            "multi-user",
            Duration::from_millis(12_340),
        );
        record_in(
            dir.path(),
            "tampered-root",
            "poweroff",
            Duration::from_millis(5_050),
        );
        let text = std::fs::read_to_string(dir.path().join("timings.tsv")).unwrap();
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(rows.len(), 2);
        assert!(rows[0][0].parse::<u64>().unwrap() > 1_600_000_000);
        assert_eq!(rows[0][1..], ["clean-boot", "multi-user", "12.34"]);
        assert_eq!(rows[1][1..], ["tampered-root", "poweroff", "5.05"]);
    }
}
