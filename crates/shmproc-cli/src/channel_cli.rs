//! `shmproc demo queue|pipe` and `shmproc bench channels`: printing for the channel demos and
//! benchmark whose work lives in the library (`channels`, `channel_baselines`, `channel_demos`).

use std::io;
use std::time::Duration;

use shmproc::raw::LIVENESS_POLL;
use shmproc_cli::channel_baselines::{self as base, Fd, Wake};
use shmproc_cli::channel_demos;
use shmproc_cli::channels::{self, Latency, Placement, Throughput, SPIN_FOREVER};
use shmproc_cli::fmt::rate;

use crate::progress;

type CliResult = Result<(), Box<dyn std::error::Error>>;

pub fn demo_queue() -> CliResult {
    println!("A child process puts the squares of [2, 3, 5] on a Queue; the parent drains it:");
    let squares = channel_demos::squares(&[2, 3, 5])?;
    let shown: Vec<String> = squares.iter().map(u64::to_string).collect();
    println!("  {}", shown.join(" "));
    println!("A sender process and a receiver process share a Queue of strings:");
    for word in channel_demos::sender_receiver(&["hello", "from", "the", "sender"])? {
        println!("  Received: {word}");
    }
    let msgs = 1_000_000;
    let t = channels::queue_stream(8, 1, msgs)?;
    println!(
        "Throughput, one producer process -> one consumer process, 8-byte messages: {} \
         (Python's multiprocessing.Queue: about 0.18 M/s)",
        rate(msgs as f64 / t.as_secs_f64())
    );
    Ok(())
}

pub fn demo_pipe() -> CliResult {
    println!("The parent sends a question over a duplex Pipe; the child answers:");
    let (reply, len) = channel_demos::pipe_exchange("what is the answer?")?;
    println!("  parent got: {reply:?} (the question had {len} characters)");
    let mut samples = channels::pipe_round_trips(20_000, None)?;
    let l = Latency::of("pipe", &mut samples);
    println!(
        "Round trip of a small message, parent -> child -> parent: median {:.2} us, p99 {:.2} us \
         (Python's Pipe: 33-46 us)",
        us(l.median),
        us(l.p99)
    );
    Ok(())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

const SIZES: [usize; 3] = [8, 1024, 64 << 10];
/// The row of 8-byte messages through `Queue::put`/`get` (the other Queue rows use the bytes API).
const TYPED_QUEUE: &str = "shmproc Queue, typed";
const RUNS: usize = 3;

/// Median of `RUNS` timings of `f` as a throughput row.
fn measure(
    name: &str,
    size: usize,
    producers: usize,
    msgs: u64,
    mut f: impl FnMut() -> io::Result<Duration>,
) -> io::Result<Throughput> {
    let mut times = (0..RUNS).map(|_| f()).collect::<io::Result<Vec<_>>>()?;
    times.sort();
    Ok(Throughput {
        name: name.into(),
        size,
        producers,
        msgs,
        elapsed: times[RUNS / 2],
    })
}

fn progress(what: &str) {
    progress::step(format!("bench channels: {what}"));
}

pub fn bench_channels(json: bool) -> CliResult {
    let mut rows = Vec::new();
    // Receiver on one CPU, senders on the other: every run gets the same two CPUs (left to
    // itself, the scheduler sometimes keeps a receiver and its sender on one CPU for a while).
    if std::thread::available_parallelism().map_or(1, usize::from) >= 2 {
        channels::set_placement(Placement::TwoCpus);
    }
    for size in SIZES {
        let n = channels::messages_for(size);
        let nb = n / 4; // the baselines are slower: fewer messages keep the run short
        for p in [1, 2] {
            progress(&format!("Queue {size} B x{p}"));
            rows.push(measure("shmproc Queue", size, p, n, || {
                channels::queue_stream(size, p, n)
            })?);
            progress(&format!("Pipe {size} B x{p}"));
            rows.push(measure("shmproc Pipe", size, p, n, || {
                channels::pipe_stream(size, p, n)
            })?);
        }
        if size == 8 {
            progress("Queue 8 B typed");
            rows.push(measure(TYPED_QUEUE, size, 1, n, || {
                channels::queue_stream_typed(n)
            })?);
        }
        progress(&format!("baselines {size} B"));
        if size == 8 {
            rows.push(measure("raw SPSC ring", size, 1, n, || {
                base::spsc_stream(n)
            })?);
        }
        for fd in [Fd::Pipe, Fd::Socket] {
            rows.push(measure(fd.name(), size, 1, nb, || {
                base::fd_stream(fd, size, nb)
            })?);
        }
        #[cfg(feature = "baselines")]
        {
            rows.push(measure("ipc-channel", size, 1, nb, || {
                base::ipc_stream(size, nb)
            })?);
            rows.push(measure("crossbeam (threads)", size, 1, n, || {
                Ok(base::crossbeam_stream(size, n))
            })?);
        }
    }
    let lat = round_trips()?;
    progress::clear();
    let goals = goals(&rows, &lat);
    if json {
        print_json(&rows, &lat, &goals);
    } else {
        print_tables(&rows, &lat, &goals);
    }
    Ok(())
}

/// The two placements round trips are measured in (see [`Placement`]): a free one measures
/// mostly where the scheduler happened to put the processes. On one CPU only the first.
const PLACEMENTS: [(Placement, &str); 2] = [
    (Placement::SameCpu, "same CPU"),
    (Placement::TwoCpus, "two CPUs"),
];

/// Every round-trip row: spinning on two CPUs; sleeping shmproc, its floors and the fd and
/// ipc-channel baselines in each placement (named `... [placement]`); crossbeam's threads.
fn round_trips() -> io::Result<Vec<Latency>> {
    let mut lat = Vec::new();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    for (placement, place) in PLACEMENTS {
        if placement == Placement::TwoCpus && cpus < 2 {
            continue;
        }
        channels::set_placement(placement);
        progress(&format!("round trips, {place}"));
        let named = |name: &str, samples: &mut Vec<Duration>| {
            Latency::of(format!("{name} [{place}]"), samples)
        };
        if placement == Placement::TwoCpus {
            // Each shmproc case alternates with its physical floors in many short rounds, so
            // all see the same machine state.
            let [mut spin, mut spin_floor] = interleaved(
                8,
                2_500,
                [
                    &mut |n| channels::pipe_round_trips(n, Some(SPIN_FOREVER)),
                    &mut |n| base::word_ping_pong(n, Wake::Spin),
                ],
            )?;
            lat.push(named("shmproc Pipe, spinning", &mut spin));
            lat.push(named("raw spin ping-pong", &mut spin_floor));
        }
        let [mut sleep, mut sleep_floor, mut sleep_nap] = interleaved(
            30,
            200,
            [
                &mut |n| channels::pipe_round_trips(n, Some(0)),
                &mut |n| base::word_ping_pong(n, Wake::Futex),
                &mut |n| base::word_ping_pong(n, Wake::FutexNap(LIVENESS_POLL)),
            ],
        )?;
        lat.push(named("shmproc Pipe, sleeping", &mut sleep));
        lat.push(named("raw futex ping-pong", &mut sleep_floor));
        lat.push(named("raw futex ping-pong, 10 ms naps", &mut sleep_nap));
        lat.push(named("pipe(2)", &mut base::fd_ping_pong(Fd::Pipe, 3_000)?));
        lat.push(named(
            "unix socketpair",
            &mut base::fd_ping_pong(Fd::Socket, 3_000)?,
        ));
        #[cfg(feature = "baselines")]
        lat.push(named("ipc-channel", &mut base::ipc_ping_pong(3_000)?));
    }
    channels::set_placement(Placement::Free);
    #[cfg(feature = "baselines")]
    lat.push(Latency::of(
        "crossbeam (threads)",
        &mut base::crossbeam_ping_pong(20_000),
    ));
    #[cfg(not(feature = "baselines"))]
    progress::suspend(|| {
        eprintln!(
            "shmproc: bench channels: ipc-channel and crossbeam baselines not built \
             (the `baselines` feature is off)"
        )
    });
    Ok(lat)
}

/// A round-trip measurement: `n` round trips in, samples out.
type Trips<'a> = &'a mut dyn FnMut(usize) -> io::Result<Vec<Duration>>;

/// Runs every case `rounds` times in turn with `n` round trips each, collecting each one's
/// samples.
fn interleaved<const N: usize>(
    rounds: usize,
    n: usize,
    mut cases: [Trips<'_>; N],
) -> io::Result<[Vec<Duration>; N]> {
    let mut out: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::new());
    for _ in 0..rounds {
        for (case, samples) in cases.iter_mut().zip(out.iter_mut()) {
            samples.extend(case(n)?);
        }
    }
    Ok(out)
}

/// (goal, measured, met)
fn goals(rows: &[Throughput], lat: &[Latency]) -> Vec<(String, String, bool)> {
    let q = |size| {
        rows.iter()
            .find(|r| r.name == "shmproc Queue" && r.size == size && r.producers == 1)
            .expect("queue row")
    };
    let spsc = rows
        .iter()
        .find(|r| r.name == "raw SPSC ring")
        .expect("spsc row");
    let typed = rows
        .iter()
        .find(|r| r.name == TYPED_QUEUE)
        .expect("typed queue row");
    // Rows of a placement this machine cannot give (one CPU) are missing: so are their goals.
    let l = |name: &str| lat.iter().find(|l| l.name == name);
    let mut goals = vec![
        (
            "Queue 1->1 8 B >= 20 M msg/s (put/get)".into(),
            format!(
                "{} (bytes API, a Vec per get_bytes: {}; raw SPSC ring in this run: {})",
                rate(typed.msgs_per_sec()),
                rate(q(8).msgs_per_sec()),
                rate(spsc.msgs_per_sec())
            ),
            typed.msgs_per_sec() >= 20e6,
        ),
        (
            "Queue 1->1 64 KiB >= 4 GB/s".into(),
            format!("{:.2} GB/s", q(65536).gb_per_sec()),
            q(65536).gb_per_sec() >= 4.0,
        ),
        (
            "Queue 1->1 1 KiB >= 2.5 GB/s".into(),
            format!("{:.2} GB/s", q(1024).gb_per_sec()),
            q(1024).gb_per_sec() >= 2.5,
        ),
    ];
    if let Some(spin) = l("shmproc Pipe, spinning [two CPUs]") {
        goals.push((
            "Pipe round trip, spinning, two CPUs <= 0.5 us".into(),
            format!("{:.3} us", us(spin.median)),
            spin.median <= Duration::from_nanos(500),
        ));
    }
    for (_, place) in PLACEMENTS {
        let row = |name: &str| l(&format!("{name} [{place}]"));
        let (Some(sleep), Some(futex), Some(napping)) = (
            row("shmproc Pipe, sleeping"),
            row("raw futex ping-pong"),
            row("raw futex ping-pong, 10 ms naps"),
        ) else {
            continue;
        };
        let ratio = sleep.median.as_secs_f64() / futex.median.as_secs_f64();
        let nap_ratio = sleep.median.as_secs_f64() / napping.median.as_secs_f64();
        goals.push((
            format!("Pipe round trip, sleeping, {place} <= 1.05x raw futex"),
            format!(
                "{ratio:.2}x ({:.2} vs {:.2} us; {nap_ratio:.2}x a futex ping-pong with 10 ms naps)",
                us(sleep.median),
                us(futex.median)
            ),
            ratio <= 1.05,
        ));
    }
    goals
}

fn print_json(rows: &[Throughput], lat: &[Latency], goals: &[(String, String, bool)]) {
    for r in rows {
        println!(
            "{{\"kind\":\"throughput\",\"name\":\"{}\",\"size\":{},\"producers\":{},\"msgs\":{},\
             \"msgs_per_sec\":{:.0},\"gb_per_sec\":{:.3},\"runs\":{RUNS}}}",
            r.name,
            r.size,
            r.producers,
            r.msgs,
            r.msgs_per_sec(),
            r.gb_per_sec()
        );
    }
    for l in lat {
        println!(
            "{{\"kind\":\"latency\",\"name\":\"{}\",\"median_ns\":{},\"p99_ns\":{}}}",
            l.name,
            l.median.as_nanos(),
            l.p99.as_nanos()
        );
    }
    for (goal, got, met) in goals {
        println!("{{\"kind\":\"goal\",\"goal\":\"{goal}\",\"measured\":\"{got}\",\"met\":{met}}}");
    }
}

fn print_tables(rows: &[Throughput], lat: &[Latency], goals: &[(String, String, bool)]) {
    println!(
        "One-way throughput, receiver pinned to one CPU and senders to another (median of {RUNS} \
         runs; ratio vs pipe(2) at the same size)"
    );
    println!(
        "{:<22} {:>8} {:>5} {:>12} {:>10} {:>9}",
        "channel", "size", "prod", "msg/s", "GB/s", "vs pipe"
    );
    for r in rows {
        let pipe = rows
            .iter()
            .find(|b| b.name == "pipe(2)" && b.size == r.size)
            .map_or(1.0, Throughput::msgs_per_sec);
        println!(
            "{:<22} {:>8} {:>5} {:>12} {:>10.2} {:>8.1}x",
            r.name,
            r.size,
            r.producers,
            rate(r.msgs_per_sec()),
            r.gb_per_sec(),
            r.msgs_per_sec() / pipe
        );
    }
    println!(
        "\nRound trip of an 8-byte message, the two processes pinned to one CPU or to two \
         (ratio vs the raw futex ping-pong in the same placement, medians)"
    );
    println!(
        "{:<42} {:>10} {:>10} {:>9}",
        "channel", "median us", "p99 us", "vs futex"
    );
    for l in lat {
        let futex = PLACEMENTS
            .iter()
            .map(|(_, place)| format!("[{place}]"))
            .find(|tag| l.name.ends_with(tag.as_str()))
            .and_then(|tag| {
                let floor = format!("raw futex ping-pong {tag}");
                lat.iter().find(|f| f.name == floor)
            });
        let ratio = futex.map_or(String::from("-"), |f| {
            format!("{:.2}x", l.median.as_secs_f64() / f.median.as_secs_f64())
        });
        println!(
            "{:<42} {:>10.3} {:>10.3} {:>9}",
            l.name,
            us(l.median),
            us(l.p99),
            ratio
        );
    }
    println!("\nGoals");
    for (goal, got, met) in goals {
        println!("  [{}] {goal}: {got}", if *met { "met" } else { "MISSED" });
    }
}
