#![no_main]
//! See `maestro_fuzz::store_records`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| maestro_fuzz::store_records::run(data));
