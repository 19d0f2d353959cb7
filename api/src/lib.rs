//! The HTTP/JSON and gRPC APIs compatible with Maestro Next, and the
//! forwarders. Tracked by the API issue; this crate owns every wire type so
//! the engine's types stay free of serialization concerns.
