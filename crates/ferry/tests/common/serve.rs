//! Starting a `ferry serve` child for a test, shared by the CLI's tests and the agent's
//! end-to-end tests (which include this file by path).
//!
//! The server listens on 127.0.0.1:0 and logs JSON; [`spawn`] reads its log until the
//! "listening" line, which names the port and comes after the admin token is saved, so no test
//! polls or sleeps to find out whether the server is up.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts `cmd` (a `ferry serve` command line the caller has set up: binary, environment, data
/// directory) on a free loopback port; the child and its `http://127.0.0.1:PORT`.
pub fn spawn(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0"])
        .env("FERRY_LOG__FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let address = loop {
        let mut line = String::new();
        if log.read_line(&mut line).unwrap() == 0 {
            panic!("ferry serve exited before listening:\n{seen}");
        }
        seen.push_str(&line);
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if entry["fields"]["message"] == "ferry server listening" {
            break entry["fields"]["address"].as_str().unwrap().to_owned();
        }
    };
    // Keep reading the log so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    (child, format!("http://{address}"))
}
