//! Every kind of JSON body has its size limit from configuration, and a
//! body over it is refused with a 413 that states that limit.

use serde_json::json;

use herald_testkit::app::*;
use herald_testkit::read_problem;

#[tokio::test]
async fn each_lowered_body_limit_is_enforced_with_a_413_stating_it() {
    // Each kind its own limit, all far below the defaults, so that a 413
    // naming the right number shows which setting was applied.
    let app = spawn_with(|c| {
        c.max_query_bytes = 1000;
        c.max_definition_bytes = 1100;
        c.max_settings_bytes = 1200;
        c.max_admin_bytes = 1300;
    })
    .await;
    let t = app.tenant("Acme").await;
    let pad = "a".repeat(1500);
    let definition = |description: &str| {
        json!({"event_type": "order.placed", "category": "business", "name": "Order placed",
               "description": description})
    };
    let cases = [
        (
            "query",
            1000,
            app.post("/api/v1/events/query", &t.admin_key, &json!({"q": "x"}))
                .await,
            app.post("/api/v1/events/query", &t.admin_key, &json!({"q": pad}))
                .await,
        ),
        (
            "definition",
            1100,
            app.post(
                "/api/v1/event-definitions",
                &t.admin_key,
                &definition("small"),
            )
            .await,
            app.post("/api/v1/event-definitions", &t.admin_key, &definition(&pad))
                .await,
        ),
        (
            "settings",
            1200,
            app.put(
                "/api/v1/settings",
                &t.admin_key,
                &json!({"validation_mode": "permissive"}),
            )
            .await,
            app.put(
                "/api/v1/settings",
                &t.admin_key,
                &json!({"validation_mode": "permissive", "note": pad}),
            )
            .await,
        ),
        (
            "admin",
            1300,
            app.post(
                "/api/v1/admin/tenants",
                ROOT_KEY,
                &json!({"name": "Globex"}),
            )
            .await,
            app.post("/api/v1/admin/tenants", ROOT_KEY, &json!({"name": pad}))
                .await,
        ),
    ];
    for (kind, limit, under, over) in cases {
        // The same route takes a body under the limit: the 413 is the size.
        assert!(
            under.status().is_success(),
            "{kind}: a small body: {} {}",
            under.status(),
            under.text().await.unwrap()
        );
        let p = read_problem(over).await;
        assert_eq!(p.status, 413, "{kind}: {}", p.body);
        assert_eq!(
            p.body["detail"],
            format!("the request body is over the limit of {limit} bytes"),
            "{kind}"
        );
        assert_eq!(
            p.body["errors"][0]["kind"], "too_large",
            "{kind}: {}",
            p.body
        );
    }
}
