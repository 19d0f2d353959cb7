#![no_main]
//! See `maestro_fuzz::grpc_messages`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| maestro_fuzz::grpc_messages::run(data));
