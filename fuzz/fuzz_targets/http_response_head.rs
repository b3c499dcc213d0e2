#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lem::fuzz::response_head(data));
