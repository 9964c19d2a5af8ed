//! Herald's domain core: the canonical event and everything that turns
//! untrusted input into one (decode, validate, normalise, redact), plus its
//! JSON and protobuf codecs. Pure functions over values: no IO, no async, no
//! HTTP, no SQL (see ARCHITECTURE.md).

pub mod clock;
pub mod codec;
pub mod correlation;
pub mod decode;
pub mod error;
pub mod event;
pub mod filter;
pub mod model;
pub mod normalize;
pub mod pipeline;
pub mod redact;
pub mod stream;
pub mod timestamp;
pub mod topk;
pub mod vocabulary;

pub use clock::{Clock, IdSource, ManualClock, SequentialIds, SystemClock, UuidV7Ids};
pub use decode::{Limits, RawEvent};
pub use error::{ErrorKind, FieldError, FieldWarning, ValidationResult};
pub use event::{Actor, CanonicalEvent, Context, Correlation, Evidence, Github, Object, Outcome};
pub use model::{
    Category, EventCategory, EventId, EventSource, EventStatus, EventType, OutcomeStatus, StreamId,
    TenantId,
};
pub use pipeline::{EventProcessor, Processed, ProcessingContext};
pub use redact::{EmailHasher, RedactionPolicy};
pub use stream::{ExpectedVersion, Fold, FoldRule};
pub use timestamp::Timestamp;
pub use vocabulary::{BuiltinVocabulary, DefinitionCheck, ValidationMode, Vocabulary};
