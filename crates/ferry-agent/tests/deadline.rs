//! The check's deadline (`checkin.deadline_secs`) bounds the exchanges of answers and
//! metadata, not the download: with real processes on loopback, a download that takes several
//! times the deadline (a bandwidth cap makes it slow) still completes and is installed.

#[path = "common/fleet.rs"]
mod fleet;

use ferry_agent::exit::Exit;
use fleet::{exit, output, Device, Fleet};

#[test]
fn a_download_longer_than_the_deadline_is_not_cut() {
    let fleet = Fleet::start();
    // 8 MiB at 1 MiB/s: at least 8 s of download against a deadline of 3 s.
    let device = Device::new(&fleet, "gw-slow", "bandwidth_limit = \"1MiB/s\"");
    let config = std::fs::read_to_string(&device.config).unwrap();
    let config = config.replace("initial_jitter_secs = 0", "initial_jitter_secs = 0\ndeadline_secs = 3");
    assert!(config.contains("deadline_secs = 3"));
    std::fs::write(&device.config, config).unwrap();
    let payload: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let artifact = fleet.path("image.bin");
    std::fs::write(&artifact, &payload).unwrap();
    let release = fleet.publish_file("7.0", &artifact, "application/octet-stream", &["--required"]);

    let (code, out, err) = output(device.agent().arg("check"));
    assert_eq!(code, exit(Exit::Updated), "the slow download should be installed and committed\n{out}\n{err}");
    let installed = std::fs::read(device.dir.join("opt/app/current/image.bin")).unwrap();
    assert!(installed == payload, "the installed file differs from the published artifact");
    assert_eq!(fleet.release_state("gw-slow", release).as_deref(), Some("committed"));
}
