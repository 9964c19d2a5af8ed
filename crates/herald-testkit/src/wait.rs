//! Waiting on a condition instead of sleeping: poll it until it holds or a
//! bounded timeout passes, then fail naming what was awaited and what was
//! seen last. The short pause between polls is the only sleep a test needs.

use std::time::Duration;

/// How long between two looks at a condition.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Polls `condition` until it holds; panics after `timeout` with
/// "timed out after … waiting for: {what}".
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, timeout, || {
        let check = condition();
        async move {
            if check.await {
                Ok(())
            } else {
                Err(String::new())
            }
        }
    })
    .await
}

/// Polls `probe` until it gives `Ok(value)`, and returns the value. An
/// `Err` says what was seen instead; the last one is in the failure message
/// after `timeout`, so a timeout explains itself.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = tokio::time::Instant::now();
    loop {
        let seen = match probe().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if start.elapsed() >= timeout {
            let seen = if seen.is_empty() {
                String::new()
            } else {
                format!("; last seen: {seen}")
            };
            panic!("timed out after {timeout:?} waiting for: {what}{seen}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Watches `probe` for the whole `window` and returns its last value,
/// failing at once if `unwanted` holds for one of them: the negative half
/// of a "nothing happens" check. The caller must first show, through the
/// same path and within a window of the same length, that the thing would
/// have been seen (a positive control); otherwise this proves nothing.
pub async fn stays<T, F, Fut>(what: &str, window: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = tokio::time::Instant::now();
    loop {
        match probe().await {
            Err(seen) => panic!("{what} did not hold after {:?}: {seen}", start.elapsed()),
            Ok(value) if start.elapsed() >= window => return value,
            Ok(_) => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let n = AtomicU32::new(0);
        wait_until("three polls", Duration::from_secs(5), || async {
            n.fetch_add(1, Ordering::Relaxed) >= 2
        })
        .await;
        assert_eq!(n.load(Ordering::Relaxed), 3);
        let v = wait_for("a value", Duration::from_secs(5), || async {
            Ok::<_, String>(7)
        })
        .await;
        assert_eq!(v, 7);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for: the impossible; last seen: still 0")]
    async fn a_timeout_names_what_was_awaited_and_what_was_seen() {
        wait_for("the impossible", Duration::from_millis(50), || async {
            Err::<(), _>("still 0".to_string())
        })
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "quiet did not hold")]
    async fn stays_fails_as_soon_as_the_unwanted_thing_is_seen() {
        let n = AtomicU32::new(0);
        stays("quiet", Duration::from_secs(5), || async {
            match n.fetch_add(1, Ordering::Relaxed) {
                0 | 1 => Ok(()),
                k => Err(format!("poll {k} saw a message")),
            }
        })
        .await;
    }
}
