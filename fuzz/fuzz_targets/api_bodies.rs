#![no_main]
//! See `maestro_fuzz::api_bodies`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| maestro_fuzz::api_bodies::run(data));
