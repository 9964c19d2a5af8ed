//! Following the store's commit log: a named, durable cursor over the
//! commit order (`seq`) and a [`CommitLogFollower::step`] that reads the
//! next batch after the cursor, hands it to a [`CommitLogHandler`] and
//! moves the cursor only once the handler succeeded.
//!
//! Every consumer of "what was stored, in order" is one handler: the NATS
//! publisher today; delivery fan-out, waits, projections, statistics
//! rollups and the live tail later. Because a later commit never has a
//! smaller `seq`, a follower never skips an event that commits late.
//!
//! Delivery is **at least once**: a crash (or a failed cursor write)
//! between a handler's success and the cursor move hands the same batch to
//! the handler again. A handler's effects must therefore be harmless to
//! repeat: the publisher sets `Nats-Msg-Id`; a handler whose effects are
//! store writes keys them by event id or `seq` so a repeat overwrites
//! rather than adds. A [`CommitLogProjector`] goes further: it returns its
//! writes instead of making them, and [`CommitLogFollower::step_projecting`]
//! has the store commit them with the cursor move in one transaction, so a
//! batch is either written and passed or neither.
//!
//! The store calls live in [`CursorStore`] alone, so a change to the
//! cursor API changes this module only.

use std::future::Future;

use herald_store::{CursorMove, SequencedEvent, Store, StoreError};

/// One consumer of the commit log.
pub trait CommitLogHandler: Send {
    /// Why handling failed; a store failure of the follower itself becomes one too.
    type Error: From<StoreError> + Send;

    /// Handles `events` (non-empty, in commit order). `Ok` lets the
    /// follower move its cursor past the last of them; `Err` leaves the
    /// cursor where it was, so the same events come again on the next step.
    fn handle(
        &mut self,
        events: &[SequencedEvent],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A consumer of the commit log whose effects are store writes committed
/// with the cursor move: [`Self::project`] says what to write for a batch,
/// [`Self::commit`] writes it and applies the move in one transaction.
pub trait CommitLogProjector: Send {
    /// The writes one batch makes.
    type Effects: Send;
    /// Why projecting or committing failed.
    type Error: From<StoreError> + Send;

    /// The writes for `events` (non-empty, in commit order).
    fn project(
        &mut self,
        events: &[SequencedEvent],
    ) -> impl Future<Output = Result<Self::Effects, Self::Error>> + Send;

    /// Makes `effects` and applies `cursor` in one store transaction;
    /// `Conflict(CursorMoved)` (nothing written) when another follower of
    /// the same name moved it first.
    fn commit(
        &mut self,
        store: &Store,
        cursor: CursorMove,
        effects: Self::Effects,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// What one step of a follower did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Handled this many events; the cursor is now at `through`.
    Handled { events: usize, through: i64 },
    /// Nothing was committed after the cursor.
    Caught,
}

/// The durable cursor's store calls, in one place.
#[derive(Debug, Clone)]
struct CursorStore {
    store: Store,
    name: String,
}

impl CursorStore {
    /// The `seq` of the last event handled (0 before the first).
    async fn position(&self) -> Result<i64, StoreError> {
        self.store.cursor(&self.name).await
    }

    /// Moves the cursor from `from` (what [`Self::position`] said) to `to`;
    /// a conflict when another follower of the same name moved it first.
    async fn advance(&self, from: i64, to: i64) -> Result<(), StoreError> {
        self.store.advance_cursor(&self.name, from, to).await
    }

    /// The same move as [`Self::advance`], for a store method that applies
    /// it with other writes.
    fn move_from(&self, from: i64, to: i64) -> CursorMove {
        CursorMove {
            name: self.name.clone(),
            from,
            to,
        }
    }
}

/// A named durable cursor over the commit order, read in batches.
#[derive(Debug, Clone)]
pub struct CommitLogFollower {
    cursor: CursorStore,
    batch: usize,
}

impl CommitLogFollower {
    /// A follower whose cursor is stored under `name` (one name per
    /// consumer: two followers of one name share their progress).
    pub fn new(store: Store, name: impl Into<String>, batch: usize) -> Self {
        CommitLogFollower {
            cursor: CursorStore {
                store,
                name: name.into(),
            },
            batch: batch.max(1),
        }
    }

    /// The cursor's name.
    pub fn name(&self) -> &str {
        &self.cursor.name
    }

    /// The `seq` of the last event handled.
    pub async fn position(&self) -> Result<i64, StoreError> {
        self.cursor.position().await
    }

    /// Reads up to one batch after the cursor, hands it to `handler`, and
    /// moves the cursor past it when the handler succeeded.
    pub async fn step<H: CommitLogHandler>(&self, handler: &mut H) -> Result<Follow, H::Error> {
        let after = self.cursor.position().await?;
        let events = self.cursor.store.events_after(after, self.batch).await?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(Follow::Caught);
        };
        handler.handle(&events).await?;
        self.cursor.advance(after, last).await?;
        Ok(Follow::Handled {
            events: events.len(),
            through: last,
        })
    }

    /// Reads up to one batch after the cursor, has `projector` say what to
    /// write for it, and commits those writes with the cursor move past it.
    pub async fn step_projecting<P: CommitLogProjector>(
        &self,
        projector: &mut P,
    ) -> Result<Follow, P::Error> {
        let after = self.cursor.position().await?;
        let events = self.cursor.store.events_after(after, self.batch).await?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(Follow::Caught);
        };
        let effects = projector.project(&events).await?;
        projector
            .commit(
                &self.cursor.store,
                self.cursor.move_from(after, last),
                effects,
            )
            .await?;
        Ok(Follow::Handled {
            events: events.len(),
            through: last,
        })
    }
}

#[cfg(test)]
mod tests {
    use herald_core::{EmailHasher, EventProcessor, ProcessingContext, TenantId, Timestamp};
    use herald_store::NewEvent;

    use super::*;

    /// Records what it was handed; fails while `fail` is set.
    #[derive(Default)]
    struct Recorder {
        seen: Vec<i64>,
        fail: bool,
    }

    #[derive(Debug, thiserror::Error)]
    enum RecorderError {
        #[error(transparent)]
        Store(#[from] StoreError),
        #[error("refused")]
        Refused,
    }

    impl CommitLogHandler for Recorder {
        type Error = RecorderError;
        async fn handle(&mut self, events: &[SequencedEvent]) -> Result<(), RecorderError> {
            if self.fail {
                return Err(RecorderError::Refused);
            }
            self.seen.extend(events.iter().map(|e| e.seq));
            Ok(())
        }
    }

    async fn store_with(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path(), Default::default()).unwrap();
        append(&store, n).await;
        (dir, store)
    }

    async fn append(store: &Store, n: usize) {
        let tenant = TenantId::parse("acme").unwrap();
        let hasher = EmailHasher::new(b"k");
        let ctx = ProcessingContext {
            tenant_id: &tenant,
            email_hasher: &hasher,
            processing_timestamp: Timestamp::now(),
            ids: &herald_core::SequentialIds::default(),
            traceparent: None,
        };
        let events = (0..n)
            .map(|_| NewEvent {
                event: EventProcessor::default()
                    .process_value(
                        serde_json::json!({"event_type": "a.b", "category": "system"}),
                        &ctx,
                    )
                    .unwrap()
                    .event,
                expected_version: Default::default(),
            })
            .collect();
        store.append(events).await.unwrap();
    }

    #[tokio::test]
    async fn a_follower_hands_over_every_event_once_in_commit_order() {
        let (_dir, store) = store_with(5).await;
        let follower = CommitLogFollower::new(store.clone(), "test", 2);
        let mut handler = Recorder::default();
        let mut steps = Vec::new();
        loop {
            match follower.step(&mut handler).await.unwrap() {
                Follow::Caught => break,
                handled => steps.push(handled),
            }
        }
        assert_eq!(steps.len(), 3, "batches of 2, 2 and 1: {steps:?}");
        assert_eq!(handler.seen.len(), 5);
        assert!(handler.seen.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(follower.position().await.unwrap(), handler.seen[4]);

        // Later commits are picked up from the cursor, not from the start.
        append(&store, 1).await;
        let step = follower.step(&mut handler).await.unwrap();
        assert!(
            matches!(step, Follow::Handled { events: 1, .. }),
            "{step:?}"
        );
        assert_eq!(handler.seen.len(), 6);
    }

    #[tokio::test]
    async fn a_failed_handler_leaves_the_cursor_so_the_batch_comes_again() {
        let (_dir, store) = store_with(3).await;
        let follower = CommitLogFollower::new(store.clone(), "test", 10);
        let mut handler = Recorder {
            fail: true,
            ..Default::default()
        };
        let before = follower.position().await.unwrap();
        assert!(matches!(
            follower.step(&mut handler).await,
            Err(RecorderError::Refused)
        ));
        assert_eq!(follower.position().await.unwrap(), before);

        handler.fail = false;
        let step = follower.step(&mut handler).await.unwrap();
        assert!(
            matches!(step, Follow::Handled { events: 3, .. }),
            "{step:?}"
        );
        assert_eq!(handler.seen.len(), 3);
    }

    /// Projects one delivery per event; while projecting, lets a rival
    /// follower of the same name move the cursor first.
    struct Racing {
        rival: Option<CommitLogFollower>,
    }

    impl CommitLogProjector for Racing {
        type Effects = Vec<herald_store::NewDelivery>;
        type Error = StoreError;

        async fn project(
            &mut self,
            events: &[SequencedEvent],
        ) -> Result<Self::Effects, StoreError> {
            if let Some(rival) = self.rival.take() {
                rival.step(&mut Recorder::default()).await.unwrap();
            }
            Ok(events
                .iter()
                .map(|e| herald_store::NewDelivery {
                    delivery_id: format!("dlv_{}", e.seq),
                    tenant_id: TenantId::parse(&e.tenant_id).unwrap(),
                    subscription_id: "sub_a".into(),
                    event_id: e.event_id,
                    seq: e.seq,
                    stream_id: None,
                    stream_version: None,
                    webhook_id: format!("msg_{}", e.seq),
                    replay_id: None,
                    next_attempt_at: Timestamp::now(),
                    created_at: Timestamp::now(),
                })
                .collect())
        }

        async fn commit(
            &mut self,
            store: &Store,
            cursor: CursorMove,
            effects: Self::Effects,
        ) -> Result<(), StoreError> {
            store.fan_out(cursor, effects).await.map(|_| ())
        }
    }

    #[tokio::test]
    async fn a_projection_commits_its_writes_with_the_move_or_not_at_all() {
        let (_dir, store) = store_with(2).await;
        let tenant = TenantId::parse("acme").unwrap();
        let events = store.events_after(0, 10).await.unwrap();
        let follower = CommitLogFollower::new(store.clone(), "fan", 10);

        let mut racing = Racing {
            rival: Some(CommitLogFollower::new(store.clone(), "fan", 10)),
        };
        let lost = follower.step_projecting(&mut racing).await.unwrap_err();
        assert!(
            matches!(
                lost,
                StoreError::Conflict(herald_store::ConflictReason::CursorMoved { .. })
            ),
            "{lost:?}"
        );
        for e in &events {
            assert_eq!(
                store
                    .deliveries_of_event(&tenant, e.event_id)
                    .await
                    .unwrap(),
                vec![],
                "the losing projection wrote nothing"
            );
        }

        // Positive control: without a rival the writes land with the move.
        append(&store, 1).await;
        let step = follower.step_projecting(&mut racing).await.unwrap();
        assert!(
            matches!(step, Follow::Handled { events: 1, .. }),
            "{step:?}"
        );
        let last = store.events_after(events[1].seq, 10).await.unwrap();
        assert_eq!(follower.position().await.unwrap(), last[0].seq);
        assert_eq!(
            store
                .deliveries_of_event(&tenant, last[0].event_id)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn followers_of_different_names_keep_their_own_cursors() {
        let (_dir, store) = store_with(2).await;
        let first = CommitLogFollower::new(store.clone(), "first", 10);
        let second = CommitLogFollower::new(store.clone(), "second", 10);
        let (mut a, mut b) = (Recorder::default(), Recorder::default());
        // Positive control: the first follower does see the events.
        assert!(matches!(
            first.step(&mut a).await.unwrap(),
            Follow::Handled { events: 2, .. }
        ));
        assert_eq!(first.step(&mut a).await.unwrap(), Follow::Caught);
        assert!(matches!(
            second.step(&mut b).await.unwrap(),
            Follow::Handled { events: 2, .. }
        ));
        assert_eq!(a.seen, b.seen);
    }
}
