#![no_main]
//! See `maestro_fuzz::scheduler_documents`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| maestro_fuzz::scheduler_documents::run(data));
