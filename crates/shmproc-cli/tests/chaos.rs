//! `shmproc chaos` as a user runs it: a short run of every scenario finds no hang, no lost,
//! duplicated or torn message and no leaked segment, and says so in its JSON.

use std::process::Command;

/// The number after `"field":` in the top-level object (its counters come before the
/// per-scenario ones).
fn top_level(json: &str, field: &str) -> u64 {
    let key = format!("\"{field}\":");
    let at = json
        .find(&key)
        .unwrap_or_else(|| panic!("{field} missing in {json}"))
        + key.len();
    let digits: String = json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number in {json}"))
}

#[test]
fn a_short_chaos_run_finds_no_hang_loss_tear_or_leak() {
    let out = Command::new(env!("CARGO_BIN_EXE_shmproc"))
        .args(["chaos", "--seconds", "2", "--json"])
        .output()
        .expect("run shmproc chaos");
    let json = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "shmproc chaos failed ({}):\n{json}\n{stderr}",
        out.status
    );
    assert!(top_level(&json, "trials") > 0, "{json}");
    assert!(top_level(&json, "kills") > 0, "{json}");
    for bad in [
        "hangs",
        "lost",
        "duplicated",
        "torn",
        "leaked_segments",
        "unexpected",
    ] {
        assert_eq!(top_level(&json, bad), 0, "{bad} in {json}\n{stderr}");
    }
    assert!(json.contains("\"passed\":true"), "{json}");
    assert!(json.contains("\"scenarios\":{\"queue\":"), "{json}");
}

#[test]
fn chaos_explains_itself_and_rejects_unknown_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_shmproc"))
        .args(["chaos", "--minutes", "2"])
        .output()
        .expect("run shmproc chaos");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--minutes'"));
    let help = Command::new(env!("CARGO_BIN_EXE_shmproc"))
        .args(["chaos", "--help"])
        .output()
        .expect("run shmproc chaos --help");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("--seconds <N>") && text.contains("pipe-stream"),
        "{text}"
    );
}
