//! The generated protobuf code: messages (prost), clients and servers
//! (tonic) and, for `api.v1`, protojson serde impls (pbjson). Sources are in
//! `api/proto/`; `build.rs` compiles them without `protoc`.
//!
//! - [`api::v1`]: Maestro Next's `SchedulersService`, `OperationsService`
//!   and `RoomsService`, with upstream's names and field numbers;
//! - [`eventforwarder`]: the forwarder protocol maestro sends events with;
//! - [`internal::v1`]: the worker protocol of the split-process mode.
//!
//! Well-known types are `pbjson_types`' (their serde is protojson's).

// Generated code follows the protos, not this workspace's lints.
#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod api {
    pub mod v1 {
        tonic::include_proto!("api.v1");
        include!(concat!(env!("OUT_DIR"), "/api.v1.serde.rs"));
    }
}

pub mod eventforwarder {
    tonic::include_proto!("eventforwarder");
}

pub mod internal {
    pub mod v1 {
        tonic::include_proto!("maestro.internal.v1");
    }
}

/// Every proto file above and its imports, encoded: what gRPC reflection serves.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin"));
