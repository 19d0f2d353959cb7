#![no_main]
//! See `maestro_fuzz::demand_traces`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| maestro_fuzz::demand_traces::run(data));
