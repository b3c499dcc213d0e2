#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lem::fuzz::json_decode(data));
