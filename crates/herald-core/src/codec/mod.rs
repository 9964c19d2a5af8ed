//! Encodings of the canonical event: JSON (serde, snake_case, the API's form)
//! and Protocol Buffers (`proto/herald/v1/event.proto`, the compact binary
//! form). Both round-trip every canonical event exactly (Property 18:
//! Serialization Round-Trip Consistency), and decoding untrusted bytes
//! returns an error, never panics.

pub mod json;
pub mod proto;

/// Why bytes did not decode into a canonical event.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("invalid JSON event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid protobuf event: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid protobuf event: field `{field}`: {reason}")]
    Field { field: &'static str, reason: String },
}

/// Types generated from the `.proto` by build.rs.
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    unused_qualifications
)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/herald.v1.rs"));
}
