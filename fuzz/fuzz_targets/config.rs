//! Fuzzes the topology config parser: no input panics it, and a refusal is one line that starts with the file's name.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = sando::config::Config::parse(std::path::Path::new("fuzz.toml"), text) {
        let message = e.to_string();
        assert!(message.starts_with("fuzz.toml:"), "{message}");
        assert!(!message.contains('\n'), "{message:?}");
    }
});
