//! Compiles the protos with protox (pure Rust, so no `protoc` binary is
//! needed anywhere), generates prost messages and tonic clients and servers,
//! protojson serde impls for `api.v1` (the HTTP API reads and writes the
//! generated messages themselves, see `src/json.rs`), and writes the
//! encoded descriptor set for gRPC reflection, the OpenAPI document and the
//! JSON adapter.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/api/v1/messages.proto",
    "proto/api/v1/schedulers.proto",
    "proto/api/v1/operations.proto",
    "proto/api/v1/rooms.proto",
    "proto/eventforwarder/events.proto",
    "proto/maestro/internal/v1/worker.proto",
];

/// The well-known types come from pbjson-types, whose Struct, Duration and
/// Timestamp serialise as protojson does ("30s", RFC 3339, a JSON object);
/// prost's own would not. prost and pbjson must agree on the path.
const WELL_KNOWN: (&str, &str) = (".google.protobuf", "::pbjson_types");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    // Imports (the well-known types) are included: reflection clients need
    // every file a service's messages refer to.
    let fds = protox::compile(PROTOS, ["proto"])?;
    let encoded = fds.encode_to_vec();
    std::fs::write(out_dir.join("file_descriptor_set.bin"), &encoded)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Without this prost maps the well-known types to prost-types
        // itself, and a second extern path for them is refused.
        .compile_well_known_types(true)
        .extern_path(WELL_KNOWN.0, WELL_KNOWN.1)
        .compile_fds(fds)?;

    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .extern_path(WELL_KNOWN.0, WELL_KNOWN.1)
        // grpc-gateway's protojson: zero values are written, unknown
        // fields are ignored on input.
        .emit_fields()
        .ignore_unknown_fields()
        .build(&[".api.v1"])?;
    Ok(())
}
