//! A real redis-server per test and workers that are copies of the test binary, both stopped
//! when dropped.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

pub use shmproc::cluster::LocalRedis;

/// A throwaway redis-server, or `None` (loudly) when `SHMPROC_SKIP_REDIS=1` and there is none.
///
/// # Panics
/// If redis-server is not installed (and skipping was not asked for) or does not answer.
pub fn redis() -> Option<LocalRedis> {
    match LocalRedis::start() {
        Ok(redis) => Some(redis),
        Err(e) if std::env::var_os("SHMPROC_SKIP_REDIS").is_some_and(|v| v == "1") => {
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "!!! SKIPPING a broker test: redis-server could not start ({e}) !!!"
            );
            None
        }
        Err(e) => panic!(
            "redis-server could not start ({e}): install it (apt-get install redis-server; \
             .ci/run does), or set SHMPROC_SKIP_REDIS=1 to skip the broker tests"
        ),
    }
}

/// Worker processes: copies of this test binary started with `SHMPROC_WORKER`.
pub struct Workers {
    pub children: Vec<Child>,
}

impl Workers {
    /// `count` workers of `threads` threads each on `queue`, visibility timeout
    /// `visibility_ms`.
    pub fn start(
        url: &str,
        queue: &str,
        count: usize,
        threads: usize,
        visibility_ms: u64,
    ) -> Workers {
        let worker = shmproc::cluster::Worker::new(url)
            .queue(queue)
            .threads(threads)
            .visibility_timeout(Duration::from_millis(visibility_ms));
        let children = (0..count)
            .map(|_| worker.spawn_local().expect("a worker starts"))
            .collect();
        Workers { children }
    }

    /// SIGKILLs the worker with pid `pid`; asserts it was one of these and died by signal.
    pub fn kill(&mut self, pid: u32) {
        use std::os::unix::process::ExitStatusExt;
        let child = self
            .children
            .iter_mut()
            .find(|c| c.id() == pid)
            .unwrap_or_else(|| panic!("pid {pid} is none of the workers"));
        child.kill().expect("kill");
        let status = child.wait().expect("reap");
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A fresh directory for a test's files, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("shmproc-cluster-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    pub fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits (bounded) until `path` exists and returns its contents.
pub fn wait_for_file(path: &Path, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[shmproc::entry]
pub fn square(n: u64) -> u64 {
    n * n
}

#[shmproc::entry]
pub fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Appends this process's pid to `dir/runs`; the first run writes `dir/first` and sleeps a
/// minute (to be killed), later runs return the number of runs so far.
#[shmproc::entry]
pub fn stall_once(dir: String) -> usize {
    let dir = Path::new(&dir);
    let runs = record_run(dir);
    if !dir.join("first").exists() {
        std::fs::write(dir.join("first"), std::process::id().to_string()).expect("first");
        std::thread::sleep(Duration::from_secs(60));
    }
    runs
}

/// Records the run in `dir/runs`, writes its pid to `dir/pid-<run>`, then sleeps a minute.
#[shmproc::entry]
pub fn stall(dir: String) {
    let dir = Path::new(&dir);
    let runs = record_run(dir);
    std::fs::write(
        dir.join(format!("pid-{runs}")),
        std::process::id().to_string(),
    )
    .expect("pid");
    std::thread::sleep(Duration::from_secs(60));
}

/// Appends a line to `dir/runs`; returns how many lines it has now.
fn record_run(dir: &Path) -> usize {
    let runs = dir.join("runs");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&runs)
        .expect("runs");
    writeln!(file, "{}", std::process::id()).expect("append");
    count_runs(dir)
}

/// How many runs `dir/runs` records.
pub fn count_runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}
