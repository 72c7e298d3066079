//! `shmproc bench all` (a stub until the real report module lands).

/// Options of `shmproc bench all`.
pub struct AllOptions {
    /// Fewer messages and rounds.
    pub quick: bool,
    /// Where the report goes.
    pub out: std::path::PathBuf,
    /// Pin benchmark processes to CPUs.
    pub pin: bool,
    /// No progress on stderr.
    pub quiet: bool,
}

/// Runs every benchmark and writes the report.
///
/// # Errors
/// Always, for now: the real module is not merged yet.
pub fn bench_all(opts: &AllOptions) -> Result<(), Box<dyn std::error::Error>> {
    let _ = opts;
    Err("bench all is not built yet".into())
}
