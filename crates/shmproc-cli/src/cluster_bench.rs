//! `shmproc bench cluster`: a broker pool's task round trip and map throughput with 1, 2 and
//! 4 worker processes on this host, next to a bare redis client doing the same
//! `XADD → XREADGROUP → XACK + reply → XREAD` cycle in the same run, against a throwaway
//! redis-server. The broker's CPU use during each map shows where it saturates.

use std::process::Child;
use std::time::{Duration, Instant};

use redis::{Connection, Value};
use shmproc::cluster::{BrokerExt, LocalRedis, Worker};
use shmproc::Pool;

use crate::fmt::{rate, thousands};
use crate::processes::{echo, median};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Worker process counts measured.
pub const WORKERS: [usize; 3] = [1, 2, 4];

/// What to measure.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Sequential round trips timed per worker count (paired with as many bare cycles).
    pub round_trips: usize,
    /// Items of the timed map.
    pub items: u64,
    /// Items per chunk of the map.
    pub chunk: usize,
}

/// One worker count's figures.
#[derive(Clone, Debug)]
pub struct Row {
    /// Worker processes (one task at a time each).
    pub workers: usize,
    /// Median `submit(echo, n).wait()` through the broker, in microseconds.
    pub round_trip_us: f64,
    /// Median bare cycle in the same run, in microseconds.
    pub bare_cycle_us: f64,
    /// Items per second of `map_chunked(echo, 0..items, chunk)` (the best of at least 3 maps, and 1 s of them).
    pub map_items_per_sec: f64,
    /// The broker's CPU use during the maps, as a fraction of one CPU.
    pub broker_cpu: f64,
}

/// Runs the benchmark.
///
/// # Errors
/// If redis-server is not on `PATH`, or a worker, the pool or the broker fails.
pub fn run(plan: Plan) -> BenchResult<Vec<Row>> {
    let redis = LocalRedis::start().map_err(|e| {
        format!("bench cluster needs redis-server on PATH (apt-get install redis-server): {e}")
    })?;
    let url = redis.url();
    let mut bare = Bare::start(&url)?;
    let mut rows = Vec::new();
    for workers in WORKERS {
        let queue = format!("bench-{workers}");
        let worker = Worker::new(&url).queue(&queue).threads(1);
        let mut children = Children(Vec::new());
        for _ in 0..workers {
            children.0.push(worker.spawn_local()?);
        }
        let pool = Pool::builder()
            .workers(workers)
            .broker(&url)
            .queue(&queue)
            .build()?;
        pool.map_chunked(echo, 0..20_000, plan.chunk)?; // warm up every worker
        let mut n = 0;
        let mut ours = || -> BenchResult<()> {
            n += 1;
            check(pool.submit(echo, n)?.wait()? == n)
        };
        let (rt, bare_rt) = crate::processes::paired(plan.round_trips, &mut ours, || bare.cycle())?;
        let cpu_before = cpu_seconds(redis.pid());
        let mut busy = Duration::ZERO;
        let mut best = Duration::MAX;
        // At least 3 maps and 1 s, so the broker's CPU time (counted in 10 ms ticks) means
        // something.
        let mut runs = 0;
        while runs < 3 || busy < Duration::from_secs(1) {
            runs += 1;
            let start = Instant::now();
            let out = pool.map_chunked(echo, 0..plan.items, plan.chunk)?;
            let took = start.elapsed();
            check(out.len() as u64 == plan.items && out.last() == Some(&(plan.items - 1)))?;
            busy += took;
            best = best.min(took);
        }
        let cpu = (cpu_seconds(redis.pid()) - cpu_before) / busy.as_secs_f64();
        rows.push(Row {
            workers,
            round_trip_us: median(rt).as_secs_f64() * 1e6,
            bare_cycle_us: median(bare_rt).as_secs_f64() * 1e6,
            map_items_per_sec: plan.items as f64 / best.as_secs_f64(),
            broker_cpu: cpu,
        });
        pool.shutdown()?;
    }
    bare.stop();
    Ok(rows)
}

/// The table (or JSON lines), and where throughput stops growing.
pub fn report(rows: &[Row], plan: Plan, json: bool) -> String {
    if json {
        return rows
            .iter()
            .map(|r| {
                let line = serde_json::json!({
                    "bench": "cluster",
                    "workers": r.workers,
                    "round_trip_us": r.round_trip_us,
                    "bare_cycle_us": r.bare_cycle_us,
                    "map_items": plan.items,
                    "chunk": plan.chunk,
                    "map_items_per_sec": r.map_items_per_sec,
                    "broker_cpu": r.broker_cpu,
                });
                format!("{line}\n")
            })
            .collect();
    }
    let mut out = format!(
        "broker pool on a local redis-server: round trip vs a bare XADD → XREADGROUP → XACK + \
         reply cycle (same run), map of {} trivial items in chunks of {}\n\n",
        thousands(plan.items),
        thousands(plan.chunk as u64)
    );
    out += "workers  round trip  bare cycle  ratio  map throughput  broker CPU\n";
    for r in rows {
        out += &format!(
            "{:>7}  {:>7.0} µs  {:>7.0} µs  {:>4.2}×  {:>14}  {:>8.0} %\n",
            r.workers,
            r.round_trip_us,
            r.bare_cycle_us,
            r.round_trip_us / r.bare_cycle_us,
            rate(r.map_items_per_sec),
            r.broker_cpu * 100.0
        );
    }
    out + &saturation(rows) + "\n"
}

/// Where map throughput peaks, and whether the broker is what limits it.
fn saturation(rows: &[Row]) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let Some(peak) = rows
        .iter()
        .max_by(|a, b| a.map_items_per_sec.total_cmp(&b.map_items_per_sec))
    else {
        return String::new();
    };
    let limit = if peak.broker_cpu >= 0.9 {
        "the broker is saturated there".to_owned()
    } else {
        format!(
            "the broker is not the limit; this host's {cpus} CPU(s), shared by the submitter \
             (encoding and decoding every item), the workers and the broker, are"
        )
    };
    format!(
        "map throughput peaks at {} worker(s), {}, with the broker at {:.0} % of a CPU: {limit}",
        peak.workers,
        rate(peak.map_items_per_sec),
        peak.broker_cpu * 100.0
    )
}

fn check(ok: bool) -> BenchResult<()> {
    if ok {
        Ok(())
    } else {
        Err("a task returned the wrong result".into())
    }
}

/// CPU seconds (user + system) the process `pid` has used, from `/proc`.
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let Some(stat) = pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
    else {
        return 0.0;
    };
    // Fields after the parenthesised name; utime and stime are the 14th and 15th overall.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks / if hz > 0 { hz as f64 } else { 100.0 }
}

/// Worker processes, killed when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The baseline: a bare client and a bare worker thread, each with its own connection.
struct Bare {
    conn: Connection,
    last: String,
    worker: Option<std::thread::JoinHandle<()>>,
}

const BARE_TASKS: &str = "bare:tasks";
const BARE_REPLIES: &str = "bare:replies";

impl Bare {
    fn start(url: &str) -> BenchResult<Bare> {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_connection()?;
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(BARE_TASKS)
            .arg("g")
            .arg("$")
            .arg("MKSTREAM")
            .query::<()>(&mut conn)?;
        let mut worker_conn = client.get_connection()?;
        let worker = std::thread::spawn(move || {
            let _ = bare_worker(&mut worker_conn);
        });
        Ok(Bare {
            conn,
            last: "0-0".to_owned(),
            worker: Some(worker),
        })
    }

    /// One task: `XADD`, then `XREAD BLOCK` for the reply.
    fn cycle(&mut self) -> BenchResult<()> {
        redis::cmd("XADD")
            .arg(BARE_TASKS)
            .arg("*")
            .arg("a")
            .arg(&[7_u8; 8][..])
            .query::<()>(&mut self.conn)?;
        let reply: Value = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(10_000)
            .arg("STREAMS")
            .arg(BARE_REPLIES)
            .arg(&self.last)
            .query(&mut self.conn)?;
        self.last = last_id(&reply).ok_or("no bare reply within 10 s")?;
        Ok(())
    }

    fn stop(&mut self) {
        let _ = redis::cmd("XADD")
            .arg(BARE_TASKS)
            .arg("*")
            .arg("stop")
            .arg(1)
            .query::<()>(&mut self.conn);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// The bare worker: `XREADGROUP`, then `XACK` and the reply's `XADD` in one pipeline.
fn bare_worker(conn: &mut Connection) -> redis::RedisResult<()> {
    loop {
        let got: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(0)
            .arg("STREAMS")
            .arg(BARE_TASKS)
            .arg(">")
            .query(conn)?;
        let Some(id) = last_id(&got) else { continue };
        if format!("{got:?}").contains("stop") {
            return Ok(());
        }
        redis::pipe()
            .cmd("XACK")
            .arg(BARE_TASKS)
            .arg("g")
            .arg(&id)
            .ignore()
            .cmd("XADD")
            .arg(BARE_REPLIES)
            .arg("*")
            .arg("s")
            .arg(&[7_u8; 8][..])
            .ignore()
            .query::<()>(conn)?;
    }
}

/// The id of the last entry of an `XREAD`/`XREADGROUP` reply on one stream.
fn last_id(reply: &Value) -> Option<String> {
    let Value::Array(streams) = reply else {
        return None;
    };
    let Value::Array(pair) = streams.first()? else {
        return None;
    };
    let Value::Array(entries) = pair.get(1)? else {
        return None;
    };
    let Value::Array(entry) = entries.last()? else {
        return None;
    };
    match entry.first()? {
        Value::BulkString(id) => String::from_utf8(id.clone()).ok(),
        _ => None,
    }
}
