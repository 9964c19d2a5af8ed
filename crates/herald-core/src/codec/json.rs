//! The JSON form: serde with snake_case wire names.

use super::CodecError;
use crate::event::CanonicalEvent;

pub fn encode(event: &CanonicalEvent) -> Vec<u8> {
    // Serialising these types into a Vec cannot fail: every map key is a
    // string and every value is representable.
    serde_json::to_vec(event).unwrap_or_default()
}

pub fn decode(bytes: &[u8]) -> Result<CanonicalEvent, CodecError> {
    Ok(serde_json::from_slice(bytes)?)
}
