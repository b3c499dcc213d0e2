#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lem::fuzz::http_decode(data));
