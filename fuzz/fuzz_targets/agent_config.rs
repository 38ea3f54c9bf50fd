//! The agent's TOML configuration: any text is either a configuration or a list of problems.
#![no_main]

use ferry_agent::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = Config::parse(text) {
        let _ = config.state_file();
        let _ = config.events_file();
    }
});
