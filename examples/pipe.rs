//! The seeds' Pipe demo: parent and child exchange messages over a duplex pipe, and the child
//! exiting ends the parent's `recv` with `Disconnected` instead of a hang.
//!
//! Run: `cargo run --release --example pipe`

use shmproc::{Pipe, Process, RecvError};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (parent_conn, child_conn) = Pipe::<Vec<Option<String>>>::duplex()?;
    let p = Process::fork(move || {
        let greeting = child_conn.recv().unwrap();
        println!("child got: {greeting:?}");
        let reply = vec![Some("42".into()), None, Some("hello".into())];
        child_conn.send(&reply).unwrap();
    })?;
    parent_conn.send(&vec![Some("hi child".into())])?;
    println!("parent got: {:?}", parent_conn.recv()?);
    p.join()?;
    match parent_conn.recv() {
        Err(RecvError::Disconnected) => println!("the child is gone: recv says Disconnected"),
        other => println!("unexpected: {other:?}"),
    }
    Ok(())
}
