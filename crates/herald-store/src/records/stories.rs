//! What crosses the contract for a story (`Store::story`): where it
//! starts, its bounds, and the timeline with what the walk followed, cut
//! and left out.

use herald_core::EventId;
use herald_core::correlation::CorrelationKey;

use crate::StoredEvent;

/// Where a story starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoryOrigin {
    /// Every event carrying this key value.
    Key(CorrelationKey, String),
    /// This event and every event sharing one of its story keys
    /// (`CorrelationKey::STORY`): its non-identity keys, or its identity
    /// keys when it carries no other (or when identities are followed).
    Event(EventId),
}

/// A story's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryRequest {
    pub origin: StoryOrigin,
    /// The deepest level walked: 0 is the events of the origin's keys;
    /// level n+1 the events sharing a key value with level n.
    pub max_depth: u32,
    /// The most events the story holds; each key value's lookup reads at
    /// most the room left plus one row.
    pub limit: usize,
    /// Whether identity keys (`CorrelationKey::is_identity`) met beyond
    /// the origin are walked through too.
    pub follow_identities: bool,
}

/// A key and its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyValue {
    pub key: CorrelationKey,
    pub value: String,
}

/// One event of a story.
#[derive(Debug, Clone, PartialEq)]
pub struct StoryEvent {
    pub event: StoredEvent,
    /// Commit order, the tie-break of equal times.
    pub seq: i64,
    /// The level it was found at.
    pub depth: u32,
    /// The key value whose lookup found it first; `None` for the origin
    /// event itself.
    pub linked_by: Option<KeyValue>,
    /// The event that carried `linked_by` into the walk (`None` for the
    /// origin's own keys given by path).
    pub via: Option<EventId>,
}

/// One key value the walk looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLookup {
    pub key_value: KeyValue,
    pub depth: u32,
    /// Rows the lookup read (events already in the story included).
    pub read: usize,
    /// More events carry it than the story holds: the lookup stopped at its
    /// cap, or the story filled up before all of them were in.
    pub truncated: bool,
}

/// Why a key value met on the walk was not looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFollowedReason {
    /// An identity key beyond the origin, without `follow_identities`.
    IdentityKey,
    /// Met at the deepest level.
    DepthLimit,
    /// The story was full before its turn.
    SizeLimit,
}

impl NotFollowedReason {
    pub const ALL: [NotFollowedReason; 3] = [
        NotFollowedReason::IdentityKey,
        NotFollowedReason::DepthLimit,
        NotFollowedReason::SizeLimit,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            NotFollowedReason::IdentityKey => "identity_key",
            NotFollowedReason::DepthLimit => "depth_limit",
            NotFollowedReason::SizeLimit => "size_limit",
        }
    }
}

/// A key value met on the walk and not looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFollowed {
    pub key_value: KeyValue,
    /// The level its lookup would have been.
    pub depth: u32,
    pub reason: NotFollowedReason,
}

/// A story: its events in time order (event time, then commit order) and
/// an account of the walk.
#[derive(Debug, Clone, PartialEq)]
pub struct Story {
    /// The key values the walk started from (level 0).
    pub seeds: Vec<KeyValue>,
    pub events: Vec<StoryEvent>,
    /// Every key value looked up, in lookup order.
    pub lookups: Vec<KeyLookup>,
    pub not_followed: Vec<NotFollowed>,
    /// The walk stopped at `max_depth` with key values left to look up.
    pub depth_reached: bool,
    /// The walk stopped at `limit`: a lookup was cut, or key values were
    /// left to look up when the story was full.
    pub size_reached: bool,
    /// Statements run (one per key and batch of values per level), for
    /// tests that hold the walk to its bound.
    pub statements: usize,
}

impl Story {
    /// The key values whose events the story may not all hold.
    pub fn truncated(&self) -> impl Iterator<Item = &KeyLookup> {
        self.lookups.iter().filter(|l| l.truncated)
    }
}
