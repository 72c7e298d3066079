//! `shmproc bench cluster` against a real redis-server: every worker count, every field.

use std::io::Write;
use std::process::Command;

#[test]
fn bench_cluster_json_has_every_worker_count_and_field() {
    let skip = std::env::var_os("SHMPROC_SKIP_REDIS").is_some_and(|v| v == "1");
    if skip
        && Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
    {
        // Straight to stderr: the test harness captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "!!! SKIPPING bench cluster: no redis-server (SHMPROC_SKIP_REDIS=1) !!!"
        );
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_shmproc"))
        .args(["bench", "cluster", "--round-trips", "20", "--items", "2000"])
        .args(["--chunk", "100", "--json"])
        .output()
        .expect("run shmproc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} (install redis-server: .ci/run does)\n{stderr}",
        out.status
    );
    let json = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let workers: Vec<u64> = rows
        .iter()
        .map(|r| r["workers"].as_u64().unwrap())
        .collect();
    assert_eq!(workers, [1, 2, 4], "{json}");
    for row in &rows {
        for field in [
            "round_trip_us",
            "bare_cycle_us",
            "map_items_per_sec",
            "broker_cpu",
        ] {
            assert!(
                row[field].as_f64().is_some_and(|v| v >= 0.0),
                "{field}: {row}"
            );
        }
        assert!(row["map_items_per_sec"].as_f64().unwrap() > 0.0, "{row}");
    }
}
