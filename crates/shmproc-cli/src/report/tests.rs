use super::*;

fn fake() -> Report {
    let mut r = Report {
        command: "shmproc bench all --quick --out x".into(),
        quick: true,
        pinned: false,
        seconds: 12.0,
        machine: Machine {
            cpu: "Test CPU".into(),
            cores: 2,
            kernel: "Linux 6.0".into(),
            rustc: "rustc 1.0".into(),
            python: "Python 3.11".into(),
        },
        notes: vec!["a note".into()],
        workloads: Vec::new(),
    };
    r.add(
        "Queue 8 B",
        Unit::PerSec,
        "shmproc Queue",
        Role::Shmproc,
        20e6,
    );
    r.add(
        "Queue 8 B",
        Unit::PerSec,
        "raw SPSC ring",
        Role::Limit,
        40e6,
    );
    r.add("Queue 8 B", Unit::PerSec, "pipe(2)", Role::Baseline, 1e6);
    r.add("Queue 8 B", Unit::PerSec, "mp Queue", Role::Python, 0.2e6);
    r.add(
        "Pipe round trip 8 B",
        Unit::Micros,
        "shmproc Pipe",
        Role::Shmproc,
        5.0,
    );
    r.add(
        "Pipe round trip 8 B",
        Unit::Micros,
        "futex",
        Role::Limit,
        4.0,
    );
    r.add(
        "Pipe round trip 8 B",
        Unit::Micros,
        "mp Pipe",
        Role::Python,
        20.0,
    );
    r.add(
        "Manager dict get/set",
        Unit::Micros,
        "mp Manager",
        Role::Python,
        14.0,
    );
    r
}

#[test]
fn ratios_read_as_speed() {
    let r = fake();
    assert_eq!(r.workloads.len(), 3);
    let q = &r.workloads[0];
    assert_eq!(q.vs_limit(), Some(0.5));
    assert_eq!(q.vs_python(), Some(100.0));
    let p = &r.workloads[1];
    assert_eq!(p.vs_limit(), Some(0.8));
    assert_eq!(p.vs_python(), Some(4.0));
    assert_eq!(r.workloads[2].vs_python(), None);
}

#[test]
fn renders_json_markdown_and_svg() {
    let r = fake();
    let text = json(&r).to_string();
    let back: serde_json::Value = serde_json::from_str(&text).expect("report.json parses");
    assert_eq!(back["workloads"][0]["shmproc_vs_limit"], 0.5);
    assert_eq!(back["machine"]["cpu"], "Test CPU");
    let md = markdown(&r, "docs/bench/");
    for needle in [
        "| Queue 8 B | 20.0 M/s (shmproc Queue)",
        "0.50×",
        "100×",
        "Test CPU",
        "(docs/bench/vs_limit.svg)",
        "### Manager dict get/set",
        "Note: a note",
    ] {
        assert!(md.contains(needle), "{needle:?} missing from:\n{md}");
    }
    let svgs = chart::render(&r).expect("charts");
    for svg in &svgs {
        assert!(
            svg.starts_with("<svg") && svg.contains("Queue 8 B"),
            "{svg}"
        );
    }
}

#[test]
fn python_lines_join_their_workloads() {
    let mut r = fake();
    let lines = "{\"workload\": \"Queue 8 B\", \"system\": \"other\", \"unit\": \"per_sec\", \
                 \"value\": 1.5}\n\n";
    assert_eq!(python::parse(lines, &mut r), Ok(1));
    assert_eq!(r.workloads[0].entries.len(), 5);
    assert!(python::parse("{\"workload\": 1}", &mut r).is_err());
}

/// `cargo test -p shmproc-cli --release -- --ignored bench_all_quick`: a real quick run.
/// Until the CLI runs `bench all`, the environment chooses the rest: `SHMPROC_BENCH_ALL_OUT`
/// (the directory; default a temporary one), `SHMPROC_BENCH_ALL_PIN` (`--pin`),
/// `SHMPROC_BENCH_ALL_FULL` (a full run instead of `--quick`).
#[test]
#[ignore = "a real benchmark run (about 2 minutes); run with --release -- --ignored"]
fn bench_all_quick_writes_report() {
    let dir = std::env::temp_dir().join(format!("shmproc-bench-all-{}", std::process::id()));
    let out = std::env::var_os("SHMPROC_BENCH_ALL_OUT").map_or(dir, Into::into);
    let opts = AllOptions {
        quick: std::env::var_os("SHMPROC_BENCH_ALL_FULL").is_none(),
        out: out.clone(),
        pin: std::env::var_os("SHMPROC_BENCH_ALL_PIN").is_some(),
        quiet: false,
    };
    let began = std::time::Instant::now();
    bench_all(&opts).expect("bench all");
    eprintln!(
        "bench all --quick took {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let text = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("report.json parses");
    assert!(!v["workloads"].as_array().expect("workloads").is_empty());
    assert!(out.join("report.md").is_file());
    let svgs = std::fs::read_dir(&out)
        .expect("out dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "svg"))
        })
        .count();
    assert!(svgs >= 1, "no .svg in {}", out.display());
}
