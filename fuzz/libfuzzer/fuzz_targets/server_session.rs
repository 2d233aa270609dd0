#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anjian_fuzz::server_session(data));
