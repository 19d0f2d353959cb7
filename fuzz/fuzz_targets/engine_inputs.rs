#![no_main]
//! See `maestro_fuzz::engine_inputs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| maestro_fuzz::engine_inputs::run(data));
