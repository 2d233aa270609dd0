#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anjian_fuzz::peer_message(data));
