#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anjian_fuzz::case_document(data));
