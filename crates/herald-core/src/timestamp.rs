//! `Timestamp`: an instant with nanosecond precision that keeps the UTC
//! offset it was written in, so `2025-12-30T12:00:00.123456+02:00` comes back
//! byte-for-byte as it was sent (Property 5: Timestamp Preservation).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// An RFC 3339 instant. Equality is exact: same instant *and* same offset.
#[derive(Clone, Copy)]
pub struct Timestamp(OffsetDateTime);

// `OffsetDateTime` compares instants only; Herald also keeps the offset, so
// two timestamps are the same only when both agree.
impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 && self.0.offset() == other.0.offset()
    }
}

impl Eq for Timestamp {}

impl std::hash::Hash for Timestamp {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.unix_timestamp_nanos().hash(state);
        self.0.offset().whole_seconds().hash(state);
    }
}

impl Timestamp {
    pub fn now() -> Self {
        Timestamp(OffsetDateTime::now_utc())
    }

    /// Parses RFC 3339 (`2025-12-30T10:00:00Z`, `…T10:00:00.5+02:00`).
    pub fn parse(s: &str) -> Result<Self, String> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(Timestamp)
            .map_err(|e| {
                format!(
                    "expected an RFC 3339 timestamp like 2025-12-30T10:00:00Z, got `{}` ({e})",
                    crate::model::truncate(s, 64)
                )
            })
    }

    /// Rebuilds a timestamp from its parts, as the protobuf form carries it.
    pub fn from_parts(unix_seconds: i64, nanos: u32, offset_seconds: i32) -> Result<Self, String> {
        let offset = UtcOffset::from_whole_seconds(offset_seconds)
            .map_err(|_| format!("UTC offset {offset_seconds}s is out of range"))?;
        let base = OffsetDateTime::from_unix_timestamp(unix_seconds)
            .map_err(|_| format!("unix time {unix_seconds}s is out of range"))?;
        let with_nanos = base
            .replace_nanosecond(nanos)
            .map_err(|_| format!("{nanos} nanoseconds is out of range"))?;
        let local = with_nanos
            .checked_to_offset(offset)
            .ok_or_else(|| "timestamp out of range in its offset".to_string())?;
        // `to_offset` may overflow the year range near its ends; RFC 3339
        // only has four-digit years, so refuse what cannot be written back.
        if !(0..=9999).contains(&local.year()) {
            return Err("timestamp year is outside 0000..=9999".into());
        }
        Ok(Timestamp(local))
    }

    pub fn unix_seconds(&self) -> i64 {
        self.0.unix_timestamp()
    }

    pub fn nanos(&self) -> u32 {
        self.0.nanosecond()
    }

    pub fn offset_seconds(&self) -> i32 {
        self.0.offset().whole_seconds()
    }

    /// Nanoseconds since the Unix epoch (the instant, offset ignored).
    pub fn unix_nanos(&self) -> i128 {
        self.0.unix_timestamp_nanos()
    }

    /// Microseconds since the epoch: the precision storage indexes on.
    pub fn unix_micros(&self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000) as i64
    }

    pub fn as_offset_date_time(&self) -> OffsetDateTime {
        self.0
    }

    /// RFC 3339 text in the original offset.
    pub fn to_rfc3339(&self) -> String {
        // Years 0..=9999 are guaranteed by every constructor, so this holds.
        self.0
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.0.to_string())
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Timestamp(t)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_offset_and_nanoseconds() {
        for s in [
            "2025-12-30T12:00:00.123456789+02:00",
            "2025-12-30T10:00:00Z",
            "1999-01-01T00:00:00.5-11:30",
        ] {
            let t = Timestamp::parse(s).unwrap();
            assert_eq!(t.to_rfc3339(), s);
            let back =
                Timestamp::from_parts(t.unix_seconds(), t.nanos(), t.offset_seconds()).unwrap();
            assert_eq!(back, t);
        }
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::from_parts(i64::MAX, 0, 0).is_err());
        assert!(Timestamp::from_parts(0, 2_000_000_000, 0).is_err());
    }
}
