//! A group commit that fails answers every request in it with 503 and
//! `Retry-After`, and stores nothing. The failure is a real one: the test
//! adds a deferred foreign key and a trigger to the live database, so
//! `COMMIT` itself fails (Herald's writer has `foreign_keys` on).

use std::time::Duration;

use serde_json::{Value, json};

use herald_testkit::app::*;

fn open_db(app: &TestApp) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(app.data_dir.path().join("herald.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db
}

fn count(db: &rusqlite::Connection, table: &str) -> i64 {
    db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_is_503_for_every_request_in_it_and_stores_nothing() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let (status, _) = app.create(&t.admin_key, &event("before", "system")).await;
    assert_eq!(status, 201);

    let db = open_db(&app);
    // Every event insert now writes a row whose foreign key is checked only
    // at COMMIT, and it never holds.
    db.execute_batch(
        "CREATE TABLE poison_parent (id INTEGER PRIMARY KEY);
         CREATE TABLE poison (parent INTEGER NOT NULL
             REFERENCES poison_parent (id) DEFERRABLE INITIALLY DEFERRED);
         CREATE TRIGGER poison_events AFTER INSERT ON events
             BEGIN INSERT INTO poison (parent) VALUES (1); END;",
    )
    .unwrap();

    let mut requests = Vec::new();
    for i in 0..6 {
        let (client, url, key) = (
            app.client.clone(),
            app.url("/api/v1/events/create"),
            t.admin_key.clone(),
        );
        requests.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"event_type": "x", "category": "system", "data": {"i": i}}))
                .send()
                .await
                .unwrap()
        }));
    }
    let (client, url, key) = (
        app.client.clone(),
        app.url("/api/v1/events/batch"),
        t.admin_key.clone(),
    );
    requests.push(tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(key)
            .json(&json!([event("a", "system"), event("b", "system")]))
            .send()
            .await
            .unwrap()
    }));
    for r in requests {
        let res = r.await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let retry: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
        let p: Value = res.json().await.unwrap();
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("nothing from this request was stored"),
            "{p}"
        );
    }
    assert_eq!(
        count(&db, "events"),
        1,
        "nothing from the failed commits is stored"
    );
    assert_eq!(count(&db, "poison"), 0);
    assert_eq!(app.query(&t.admin_key, &json!({})).await["total"], 1);

    // One more while the cause is still there: its commit may carry the
    // audit records of the requests above, which must survive it.
    let (status, _) = app.create(&t.admin_key, &event("late", "system")).await;
    assert_eq!(status, 503);

    // The writer is not wedged: once the cause is gone, ingest works again.
    db.execute_batch("DROP TRIGGER poison_events;").unwrap();
    let (status, e) = app.create(&t.admin_key, &event("after", "system")).await;
    assert_eq!(status, 201, "{e}");
    assert_eq!(count(&db, "events"), 2);
    let q = app
        .query(&t.admin_key, &json!({"event_type": "after"}))
        .await;
    assert_eq!(q["total"], 1);

    // Every refused request is in the audit trail: a failed commit keeps
    // the audit records it carried.
    app.eventually("all eight 503s audited", || async {
        let body: Value = app
            .get("/api/v1/audit?outcome=error&limit=1000", &t.admin_key)
            .await
            .json()
            .await
            .unwrap();
        body["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status_code"] == 503)
            .count()
            == 8
    })
    .await;
}
