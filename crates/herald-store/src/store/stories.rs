//! Stories, written once for both backends: every event sharing a
//! correlation key value, expanded breadth-first through the other keys of
//! the events found, within a depth and a size limit.
//!
//! The walk is bounded by the limits, not by the data. Each level looks
//! up its key values with one statement per key and batch of values (a
//! `UNION ALL` of one index read per value), and each value's read stops
//! at the room left in the story plus one row (beyond the story's events
//! that carry it already; never more than the limit plus one), so a key carried by
//! millions of events (a bot's `user_id`, a hot `session_id`) costs what
//! the room costs; it is reported as truncated. A key value is looked up
//! once. Identity keys (`session_id`, `user_id`, `email_hash`) are
//! followed when the story starts from one, and beyond that only when the
//! caller asks: a person's whole history is not one story.
//!
//! A lookup cut at its cap keeps the value's newest events in the index's
//! order: PostgreSQL reads `(tenant_id, key, ts)` backwards (event time);
//! SQLite reads the keys' FTS5 table (`sqlite::keys`) by rowid backwards
//! (commit order, which is event time for events sent as they happen).

use std::collections::{HashMap, HashSet};

use herald_core::correlation::CorrelationKey;
use herald_core::{EventId, TenantId};

use crate::query::{Arg, Dialect, Stmt, page_columns};
use crate::rows::{RowAccess, stored_event};
use crate::{
    KeyLookup, KeyValue, NotFollowed, NotFollowedReason, Store, StoreError, Story, StoryEvent,
    StoryOrigin, StoryRequest,
};

/// Key values per lookup statement.
const BATCH: usize = 64;

/// One row of a lookup, decoded only when its event is new to the story.
struct Found {
    value: String,
    ts: i64,
    seq: i64,
    body: String,
    status: String,
    processed_at: Option<String>,
    processing_ms: Option<f64>,
}

/// A key value waiting for its lookup.
struct Pending {
    kv: KeyValue,
    via: Option<EventId>,
}

impl Store {
    /// The story `req` asks for; `None` when it starts from an event the
    /// tenant does not have. A key value no event carries is an empty
    /// story.
    pub async fn story(
        &self,
        tenant: &TenantId,
        req: &StoryRequest,
    ) -> Result<Option<Story>, StoreError> {
        let d = self.dialect();
        let mut walk = Walk::new(req);
        let mut frontier: Vec<Pending> = match &req.origin {
            StoryOrigin::Key(key, value) => vec![Pending {
                kv: KeyValue {
                    key: *key,
                    value: value.clone(),
                },
                via: None,
            }],
            StoryOrigin::Event(id) => {
                let stmt = Stmt::new(
                    format!(
                        "SELECT {} FROM events WHERE event_id = ? AND tenant_id = ?",
                        page_columns(d)
                    ),
                    vec![Arg::EventId(*id), Arg::Text(tenant.to_string())],
                );
                let origin: crate::query::MapRow<(crate::StoredEvent, i64)> = |r| {
                    let event =
                        stored_event(&r.text(0)?, &r.text(1)?, r.opt_text(2)?, r.opt_float(3)?)?;
                    Ok((event, r.int(5)?))
                };
                let Some((event, seq)) =
                    each!(self, s => s.select(stmt.clone(), origin).await)?.pop()
                else {
                    return Ok(None);
                };
                let keys = origin_keys(&event.event, req.follow_identities);
                walk.push(StoryEvent {
                    event,
                    seq,
                    depth: 0,
                    linked_by: None,
                    via: None,
                });
                keys.into_iter()
                    .map(|kv| Pending { kv, via: Some(*id) })
                    .collect()
            }
        };
        for p in &frontier {
            walk.visited.insert(p.kv.clone());
            walk.story.seeds.push(p.kv.clone());
        }
        let mut depth = 0;
        while !frontier.is_empty() {
            // The origin event (if any) was added before level 0.
            let level_start = if depth == 0 {
                0
            } else {
                walk.story.events.len()
            };
            // Grouped by key (stable: discovery order within a key), so
            // each statement reads one key's index.
            frontier.sort_by_key(|p| key_rank(p.kv.key));
            let mut batches: Vec<&[Pending]> = Vec::new();
            let mut rest = frontier.as_slice();
            while let Some(first) = rest.first() {
                let same = rest
                    .iter()
                    .take(BATCH)
                    .take_while(|p| p.kv.key == first.kv.key)
                    .count();
                batches.push(&rest[..same]);
                rest = &rest[same..];
            }
            for (i, batch) in batches.iter().enumerate() {
                let room = req.limit.saturating_sub(walk.story.events.len());
                if room == 0 {
                    walk.story.size_reached = true;
                    for p in batches[i..].iter().flat_map(|b| b.iter()) {
                        walk.story.not_followed.push(NotFollowed {
                            key_value: p.kv.clone(),
                            depth,
                            reason: NotFollowedReason::SizeLimit,
                        });
                    }
                    break;
                }
                // Per value: the room plus one row beyond the story's
                // events that carry it already (at most `limit + 1`), so
                // a full read means more new events than room: truncated.
                let caps: Vec<usize> = batch
                    .iter()
                    .map(|p| room + 1 + walk.carrying.get(&p.kv).copied().unwrap_or(0))
                    .collect();
                let stmt = lookup(d, tenant, batch, &caps);
                let rows = each!(self, s => s.select(stmt.clone(), found_row).await)?;
                walk.story.statements += 1;
                walk.take(batch, rows, &caps, depth)?;
            }
            // The next level: the new events' keys not met before.
            let mut next = Vec::new();
            let added: Vec<(EventId, Vec<KeyValue>)> = walk.story.events[level_start..]
                .iter()
                .filter(|e| e.depth == depth)
                .map(|e| (e.event.event.event_id, story_keys(&e.event.event)))
                .collect();
            for (id, keys) in added {
                for kv in keys {
                    if !walk.visited.insert(kv.clone()) {
                        continue;
                    }
                    let reason = if kv.key.is_identity() && !req.follow_identities {
                        Some(NotFollowedReason::IdentityKey)
                    } else if depth >= req.max_depth {
                        walk.story.depth_reached = true;
                        Some(NotFollowedReason::DepthLimit)
                    } else {
                        None
                    };
                    match reason {
                        Some(reason) => walk.story.not_followed.push(NotFollowed {
                            key_value: kv,
                            depth: depth + 1,
                            reason,
                        }),
                        None => next.push(Pending { kv, via: Some(id) }),
                    }
                }
            }
            frontier = next;
            depth += 1;
        }
        let mut story = walk.story;
        story
            .events
            .sort_by_key(|e| (e.event.event.timestamp.unix_micros(), e.seq));
        Ok(Some(story))
    }
}

/// The walk's state between levels.
struct Walk {
    story: Story,
    limit: usize,
    /// Events in the story, by `seq`.
    seen: HashSet<i64>,
    /// Key values met (looked up or not).
    visited: HashSet<KeyValue>,
    /// How many of the story's events carry each key value.
    carrying: HashMap<KeyValue, usize>,
}

impl Walk {
    fn new(req: &StoryRequest) -> Walk {
        Walk {
            story: Story {
                seeds: Vec::new(),
                events: Vec::new(),
                lookups: Vec::new(),
                not_followed: Vec::new(),
                depth_reached: false,
                size_reached: false,
                statements: 0,
            },
            limit: req.limit,
            seen: HashSet::new(),
            visited: HashSet::new(),
            carrying: HashMap::new(),
        }
    }

    /// Adds an event to the story.
    fn push(&mut self, e: StoryEvent) {
        self.seen.insert(e.seq);
        for kv in story_keys(&e.event.event) {
            *self.carrying.entry(kv).or_default() += 1;
        }
        self.story.events.push(e);
    }

    /// Takes one batch's rows: per value (in the batch's order), its new
    /// events newest first while the story has room.
    fn take(
        &mut self,
        batch: &[Pending],
        rows: Vec<Found>,
        caps: &[usize],
        depth: u32,
    ) -> Result<(), StoreError> {
        let mut by_value: HashMap<String, Vec<Found>> = HashMap::new();
        for r in rows {
            by_value.entry(r.value.clone()).or_default().push(r);
        }
        for (p, cap) in batch.iter().zip(caps) {
            let mut rows = by_value.remove(&p.kv.value).unwrap_or_default();
            rows.sort_by_key(|r| std::cmp::Reverse((r.ts, r.seq)));
            let mut truncated = rows.len() >= *cap;
            let read = rows.len();
            for r in rows {
                if self.seen.contains(&r.seq) {
                    continue;
                }
                if self.story.events.len() >= self.limit {
                    truncated = true;
                    break;
                }
                let event = stored_event(&r.body, &r.status, r.processed_at, r.processing_ms)?;
                self.push(StoryEvent {
                    event,
                    seq: r.seq,
                    depth,
                    linked_by: Some(p.kv.clone()),
                    via: p.via,
                });
            }
            if truncated {
                self.story.size_reached = true;
            }
            self.story.lookups.push(KeyLookup {
                key_value: p.kv.clone(),
                depth,
                read,
                truncated,
            });
        }
        Ok(())
    }
}

fn key_rank(k: CorrelationKey) -> usize {
    CorrelationKey::STORY
        .iter()
        .position(|s| *s == k)
        .unwrap_or(usize::MAX)
}

/// The story keys an event carries, in `CorrelationKey::STORY` order.
fn story_keys(e: &herald_core::CanonicalEvent) -> Vec<KeyValue> {
    CorrelationKey::STORY
        .into_iter()
        .filter_map(|key| {
            key.value_in(e).map(|v| KeyValue {
                key,
                value: v.to_string(),
            })
        })
        .collect()
}

/// The keys a story of this event starts from: its non-identity keys, or
/// its identity keys when it has no other (events without trace or
/// business context still correlate), or all with `follow_identities`.
fn origin_keys(e: &herald_core::CanonicalEvent, follow_identities: bool) -> Vec<KeyValue> {
    let all = story_keys(e);
    if follow_identities || all.iter().all(|kv| kv.key.is_identity()) {
        return all;
    }
    all.into_iter().filter(|kv| !kv.key.is_identity()).collect()
}

/// A lookup row: `body, status, processed_at, processing_ms, ts, seq,
/// user_id, value`.
fn found_row(r: &dyn RowAccess) -> Result<Found, StoreError> {
    Ok(Found {
        body: r.text(0)?,
        status: r.text(1)?,
        processed_at: r.opt_text(2)?,
        processing_ms: r.opt_float(3)?,
        ts: r.int(4)?,
        seq: r.int(5)?,
        value: r.text(7)?,
    })
}

/// One statement reading, for each value of `batch` (all of one key), at
/// most its cap of the tenant's events carrying it, newest first in the
/// index's order.
fn lookup(d: Dialect, tenant: &TenantId, batch: &[Pending], caps: &[usize]) -> Stmt {
    let key = batch[0].kv.key;
    let col = key.as_str();
    let columns = format!("{}, {col}", page_columns(d));
    let mut arms = Vec::with_capacity(batch.len());
    let mut args = Vec::with_capacity(batch.len() * 4);
    for (i, (p, cap)) in batch.iter().zip(caps).enumerate() {
        match d {
            // The keys' FTS5 table yields rowids (= seq) newest first and
            // stops at the cap; the column check drops another value
            // whose token was cut to the same prefix.
            Dialect::Sqlite => {
                arms.push(format!(
                    "SELECT * FROM (SELECT {columns} FROM \
                     (SELECT rowid AS key_row FROM events_keys WHERE events_keys MATCH ?) AS keyed \
                     CROSS JOIN events ON events.seq = keyed.key_row \
                     WHERE tenant_id = ? AND {col} = ? ORDER BY keyed.key_row DESC LIMIT ?) AS l{i}"
                ));
                args.push(Arg::Text(crate::sqlite::keys::match_all(
                    tenant.as_str(),
                    [(key, p.kv.value.as_str())],
                )));
            }
            // `ts` alone, the key index's order: with `seq` as well the
            // planner walks the tenant's time index filtering on the key.
            Dialect::Postgres => arms.push(format!(
                "SELECT * FROM (SELECT {columns} FROM events \
                 WHERE tenant_id = ? AND {col} = ? ORDER BY ts DESC LIMIT ?) AS l{i}"
            )),
        }
        args.push(Arg::Text(tenant.to_string()));
        args.push(Arg::Text(p.kv.value.clone()));
        args.push(Arg::Int(*cap as i64));
    }
    Stmt::new(arms.join(" UNION ALL "), args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(key: CorrelationKey, values: &[&str]) -> Vec<Pending> {
        values
            .iter()
            .map(|v| Pending {
                kv: KeyValue {
                    key,
                    value: v.to_string(),
                },
                via: None,
            })
            .collect()
    }

    /// Each value of a SQLite lookup is read from the keys' FTS5 table
    /// newest rowid first, rows fetched by rowid, the cap applied as they
    /// come: no scan of the events, no sort of a hot key's rows.
    #[test]
    fn sqlite_lookups_read_the_keys_index_newest_first_without_a_sort() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::sqlite::floor::open(&dir.path().join("plan.db"), false).unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        for key in [CorrelationKey::OrderId, CorrelationKey::SessionId] {
            let stmt = lookup(
                Dialect::Sqlite,
                &tenant,
                &batch(key, &["a", "b", "c"]),
                &[11, 11, 11],
            );
            let args: Vec<rusqlite::types::Value> = stmt
                .args
                .iter()
                .map(|a| match a {
                    Arg::Text(t) => rusqlite::types::Value::Text(t.clone()),
                    Arg::Int(i) => rusqlite::types::Value::Integer(*i),
                    other => panic!("unexpected argument {other:?}"),
                })
                .collect();
            let mut plan_stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", stmt.text))
                .unwrap();
            let plan: Vec<String> = plan_stmt
                .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let keys_scans = plan
                .iter()
                .filter(|l| l.contains("SCAN events_keys VIRTUAL TABLE"))
                .count();
            assert_eq!(keys_scans, 3, "one index read per value: {plan:#?}");
            assert!(
                plan.iter()
                    .any(|l| l.contains("USING INTEGER PRIMARY KEY (rowid=?)")),
                "{plan:#?}"
            );
            assert!(
                !plan.iter().any(|l| l.contains("TEMP B-TREE")
                    || (l.starts_with("SCAN events") && !l.contains("events_keys"))),
                "no sort, no scan of the events: {plan:#?}"
            );
        }
    }

    /// On PostgreSQL each value reads `(tenant_id, key, ts)` of every
    /// partition backwards, merged in time order and cut by the limit: no
    /// sort of a hot key's rows, no walk of the tenant's time index.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_lookups_read_the_key_index_backwards_without_a_sort() {
        let Some(url) = herald_testkit::pg_url() else {
            return;
        };
        let schema = format!("story_plan_{}", std::process::id());
        let client = crate::postgres::floor::open(&url, &schema, time::OffsetDateTime::now_utc())
            .await
            .unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        let stmt = lookup(
            Dialect::Postgres,
            &tenant,
            &batch(CorrelationKey::UserId, &["a", "b"]),
            &[11, 11],
        );
        let args: Vec<(
            &(dyn tokio_postgres::types::ToSql + Sync),
            tokio_postgres::types::Type,
        )> = stmt
            .args
            .iter()
            .map(|a| match a {
                Arg::Text(t) => (t as _, tokio_postgres::types::Type::TEXT),
                Arg::Int(i) => (i as _, tokio_postgres::types::Type::INT8),
                other => panic!("unexpected argument {other:?}"),
            })
            .collect();
        let plan: Vec<String> = client
            .query_typed(
                &format!("EXPLAIN (COSTS OFF) {}", crate::query::numbered(&stmt.text)),
                &args,
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let scans: Vec<&String> = plan.iter().filter(|l| l.contains(" Scan")).collect();
        assert!(
            !scans.is_empty()
                && scans.iter().all(|l| l.contains("Index Scan Backward")
                    && l.contains("_tenant_id_user_id_ts_idx")),
            "{plan:#?}"
        );
        assert!(
            !plan.iter().any(|l| {
                let node = l.trim_start().trim_start_matches("->").trim_start();
                node == "Sort" || node.starts_with("Incremental Sort") || node.starts_with("Filter")
            }),
            "no sort, no filter: {plan:#?}"
        );
        crate::postgres::floor::drop_schema(&client, &schema).await;
    }
}
