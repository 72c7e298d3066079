//! The seed's Manager demo with shared collections instead of a manager process: two processes
//! append 10 to a shared list, and each records itself in a shared dict (one atomic update
//! counts them). The parent prints both.
//!
//! Run: `cargo run --release --example manager`

use shmproc::{Process, SharedMap, SharedVec};

fn add_item(shared_list: &SharedVec<u64>, shared_dict: &SharedMap<String, u64>, n: u64) {
    shared_list.push(10).unwrap();
    shared_dict.insert(format!("process-{n}"), n).unwrap();
    shared_dict
        .update("appends".into(), |count| count.unwrap_or(0) + 1)
        .unwrap();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Python: with Manager() as manager: shared_list = manager.list()
    let shared_list: SharedVec<u64> = SharedVec::new(1024)?;
    let shared_dict: SharedMap<String, u64> = SharedMap::new(1024)?;

    let children = (1..=2)
        .map(|n| {
            let (list, dict) = (shared_list.clone(), shared_dict.clone());
            Process::fork(move || add_item(&list, &dict, n))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for child in children {
        assert!(child.join()?.success());
    }

    println!("{:?}", shared_list.to_vec()?);
    let mut entries = shared_dict.iter()?;
    entries.sort();
    println!("{entries:?}");
    Ok(())
}
