//! Heavy hitters with a stated error: a mergeable Misra–Gries summary.
//!
//! A summary keeps at most `capacity` counters. Counting is exact while
//! fewer than `capacity + 1` distinct items were seen; past that, every
//! merge that overflows subtracts the `(capacity + 1)`-th largest count
//! from all counters and drops those at zero, adding it to `error`. For
//! every item, with `estimate` its counter (0 when absent):
//!
//! `true − error ≤ estimate ≤ true`, and `error ≤ (n − Σ counters) / (capacity + 1)`
//!
//! where `n` is the number of occurrences summarised. Summaries of disjoint
//! streams merge into a summary of their union with the same guarantee
//! (Agarwal et al., *Mergeable Summaries*, 2012), so summaries per time
//! bucket combine into one for any range of buckets. Any item occurring
//! more than `error` times is in the summary.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Counters kept per summary unless told otherwise.
pub const DEFAULT_CAPACITY: usize = 128;

/// See the module doc.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopK {
    /// Item → its counter (a lower bound of its true count).
    #[serde(rename = "c")]
    pub counts: HashMap<String, u64>,
    /// Occurrences summarised.
    pub n: u64,
    /// How far below the truth any counter may be.
    #[serde(rename = "e")]
    pub error: u64,
}

/// One item of a summary's top list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hitter {
    pub item: String,
    /// Its counter: the true count is in `[count, count + error]`.
    pub count: u64,
}

impl TopK {
    /// The exact counts of a stream (no error yet).
    pub fn exact(counts: HashMap<String, u64>) -> TopK {
        let n = counts.values().sum();
        TopK {
            counts,
            n,
            error: 0,
        }
    }

    /// Adds `other` (a summary of a disjoint stream), keeping at most
    /// `capacity` counters.
    pub fn merge(&mut self, other: &TopK, capacity: usize) {
        for (item, c) in &other.counts {
            *self.counts.entry(item.clone()).or_default() += c;
        }
        self.n += other.n;
        self.error += other.error;
        self.shrink(capacity);
    }

    /// Keeps at most `capacity` counters: subtracts the `(capacity + 1)`-th
    /// largest from every counter and drops those left at zero.
    pub fn shrink(&mut self, capacity: usize) {
        if self.counts.len() <= capacity {
            return;
        }
        let mut values: Vec<u64> = self.counts.values().copied().collect();
        values.sort_unstable_by(|a, b| b.cmp(a));
        let cut = values[capacity];
        self.counts.retain(|_, c| {
            *c -= cut.min(*c);
            *c > 0
        });
        self.error += cut;
    }

    /// The `limit` largest counters, largest first (ties by item).
    pub fn top(&self, limit: usize) -> Vec<Hitter> {
        let mut all: Vec<Hitter> = self
            .counts
            .iter()
            .map(|(item, &count)| Hitter {
                item: item.clone(),
                count,
            })
            .collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.item.cmp(&b.item)));
        all.truncate(limit);
        all
    }

    pub fn is_exact(&self) -> bool {
        self.error == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn count(stream: &[u8]) -> HashMap<String, u64> {
        let mut m = HashMap::new();
        for x in stream {
            *m.entry(format!("u{x}")).or_default() += 1;
        }
        m
    }

    #[test]
    fn small_streams_are_exact() {
        let mut t = TopK::default();
        t.merge(&TopK::exact(count(&[1, 1, 2, 3, 1])), 8);
        assert!(t.is_exact());
        let top = t.top(2);
        assert_eq!((top[0].item.as_str(), top[0].count), ("u1", 3));
        assert_eq!(top.len(), 2);
    }

    proptest! {
        /// Merging per-bucket summaries in any grouping keeps every
        /// estimate within `[true − error, true]`, the error within
        /// `n / (capacity + 1)`, and every item more frequent than the
        /// error in the summary.
        #[test]
        fn merged_summaries_stay_within_their_error_bound(
            // Skewed streams: a few heavy items among many light ones.
            buckets in prop::collection::vec(
                prop::collection::vec(prop_oneof![3 => 0u8..4, 1 => 0u8..200], 0..300),
                1..12,
            ),
            capacity in 1usize..20,
        ) {
            let mut merged = TopK::default();
            let mut truth: HashMap<String, u64> = HashMap::new();
            for b in &buckets {
                let exact = count(b);
                for (k, v) in &exact {
                    *truth.entry(k.clone()).or_default() += v;
                }
                // Each bucket is summarised on its own first, as rollups are.
                let mut summary = TopK::exact(exact);
                summary.shrink(capacity);
                merged.merge(&summary, capacity);
            }
            let n: u64 = truth.values().sum();
            prop_assert_eq!(merged.n, n);
            prop_assert!(merged.counts.len() <= capacity);
            prop_assert!(merged.error * (capacity as u64 + 1) <= n);
            for (item, &t) in &truth {
                let est = merged.counts.get(item).copied().unwrap_or(0);
                prop_assert!(est <= t, "{item}: {est} > {t}");
                prop_assert!(est + merged.error >= t, "{item}: {est} + {} < {t}", merged.error);
                if t > merged.error {
                    prop_assert!(merged.counts.contains_key(item), "{item} ({t}) missing, error {}", merged.error);
                }
            }
        }
    }
}
