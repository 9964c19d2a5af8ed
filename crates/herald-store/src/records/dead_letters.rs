//! Dead letters as they cross the store contract: deliveries given up on
//! (state `dead`), how a listing or a redrive picks them, and what a
//! listing shows of each (the delivery, its event's type and time, every
//! attempt).

use herald_core::Timestamp;

use super::{Delivery, DeliveryAttempt};

/// Which dead letters of a tenant: every field given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeadLetterFilter {
    pub subscription_id: Option<String>,
    /// The event's exact type.
    pub event_type: Option<String>,
    /// Died at or after this time.
    pub died_from: Option<Timestamp>,
    /// Died before this time.
    pub died_before: Option<Timestamp>,
    /// The last attempt's error class (`server_error`, `timeout`, …).
    pub error_class: Option<String>,
    /// Only dead processing jobs this processor failed: no delivery.
    pub processor_id: Option<String>,
}

impl DeadLetterFilter {
    /// Whether dead deliveries can match (a processor names none).
    pub fn wants_deliveries(&self) -> bool {
        self.processor_id.is_none()
    }

    /// Whether dead processing jobs can match (a subscription or an
    /// attempt's error class names none).
    pub fn wants_jobs(&self) -> bool {
        self.subscription_id.is_none() && self.error_class.is_none()
    }

    /// The same filter over dead processing jobs.
    pub fn for_jobs(&self) -> crate::DeadJobFilter {
        crate::DeadJobFilter {
            processor_id: self.processor_id.clone(),
            event_type: self.event_type.clone(),
            died_from: self.died_from,
            died_before: self.died_before,
        }
    }
}

/// One page of a dead-letter listing, in delivery id (creation) order.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterQuery {
    pub filter: DeadLetterFilter,
    pub limit: usize,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
}

/// Which dead letters a redrive puts back in the queue.
#[derive(Debug, Clone, PartialEq)]
pub enum DeadLetterSelection {
    /// These delivery ids (those not dead, or of another tenant, are skipped).
    Ids(Vec<String>),
    /// Every one the filter matches.
    Matching(DeadLetterFilter),
}

/// A delivery with every recorded attempt at it, first first.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryWithAttempts {
    pub delivery: Delivery,
    pub attempts: Vec<DeliveryAttempt>,
}

/// A dead letter as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub delivery: Delivery,
    /// The event's type and time; `None` when the event is no longer stored.
    pub event_type: Option<String>,
    pub event_time: Option<Timestamp>,
    /// When it died: its last change, since nothing changes a dead letter.
    pub died_at: Timestamp,
    pub attempts: Vec<DeliveryAttempt>,
}

/// One page of dead letters.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterPage {
    pub dead_letters: Vec<DeadLetter>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}
