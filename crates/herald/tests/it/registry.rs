//! The event-definition registry through the HTTP API: register, get, list,
//! edit-and-send-back, versions and compatibility, validation of `data` at
//! ingest (create and batch, draft 2020-12 and 7), allowed sources and
//! event_category, what a pinned version selects, pattern precedence,
//! strict mode.

use reqwest::StatusCode;
use serde_json::{Value, json};

use herald_testkit::app::*;

async fn json_of(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn fields(problem: &Value) -> Vec<String> {
    let mut f: Vec<String> = problem["errors"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    f.sort();
    f
}

fn order_definition() -> Value {
    json!({
        "event_type": "order.created", "category": "business", "event_category": "order",
        "name": "Order created", "description": "A customer placed an order",
        "payload_schema": {
            "type": "object", "required": ["order_id", "amount", "currency"],
            "properties": {
                "order_id": {"type": "string"}, "amount": {"type": "integer", "minimum": 0},
                "currency": {"enum": ["EUR", "USD"]}, "coupon": {"type": "string"},
                "items": {"type": "array", "items": {"type": "object", "required": ["sku"],
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}}}
            }
        },
        "allowed_sources": ["backend", "external_api"],
        "examples": [{"order_id": "o-1", "amount": 1999, "currency": "EUR"}],
        "ui": {"display_name": "New order", "icon": "cart", "color": "#0a0", "group": "Orders", "fields": ["order_id", "amount"]}
    })
}

fn order_event(data: Value) -> Value {
    json!({"event_type": "order.created", "category": "business", "data": data})
}

#[tokio::test]
async fn definitions_round_trip_and_are_discoverable() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let reader = app.key(&t, &["read"]).await;
    let ingest = app.key(&t, &["ingest"]).await;

    let res = app
        .post(
            "/api/v1/event-definitions",
            &t.admin_key,
            &order_definition(),
        )
        .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("def_"), "{created}");
    assert_eq!(location, format!("/api/v1/event-definitions/{id}"));
    assert_eq!(created["version"], 1);
    assert_eq!(created["versions"], json!([1]));
    assert_eq!(created["is_pattern"], false);
    assert_eq!(created["builtin"], false);
    for field in [
        "payload_schema",
        "allowed_sources",
        "examples",
        "ui",
        "description",
        "event_category",
    ] {
        assert_eq!(
            created[field],
            order_definition()[field],
            "{field} round-trips"
        );
    }
    assert!(created["created_at"].is_string() && created["updated_at"].is_string());

    // By id, by exact type, and for a read-only key.
    let (s, by_id) = json_of(app.get(&location, &reader).await).await;
    assert_eq!(s, 200);
    assert_eq!(by_id, created);
    let (_, by_type) = json_of(
        app.get("/api/v1/event-definitions/order.created", &reader)
            .await,
    )
    .await;
    assert_eq!(by_type["id"], created["id"]);

    // A pattern: found by its pattern and by a type it applies to.
    let pattern = app
        .define(
            &t.admin_key,
            &json!({"event_type": "order.>", "category": "business", "name": "Any order event"}),
        )
        .await;
    assert_eq!(pattern["is_pattern"], true);
    let (_, got) = json_of(
        app.get("/api/v1/event-definitions/order.%3E", &reader)
            .await,
    )
    .await;
    assert_eq!(got["id"], pattern["id"]);
    let (_, applies) = json_of(
        app.get(
            "/api/v1/event-definitions/order.refunded.partially",
            &reader,
        )
        .await,
    )
    .await;
    assert_eq!(
        applies["id"], pattern["id"],
        "the pattern applies to order.refunded.partially"
    );
    let (_, exact) = json_of(
        app.get("/api/v1/event-definitions/order.created", &reader)
            .await,
    )
    .await;
    assert_eq!(exact["id"], created["id"], "exact wins over the pattern");

    // The built-in vocabulary is listed as definitions too.
    let (_, builtin) = json_of(app.get("/api/v1/event-definitions/db_error", &reader).await).await;
    assert_eq!(builtin["builtin"], true);
    assert_eq!(builtin["category"], "system");

    // List with filters and paging.
    let list = |q: &'static str| {
        let app = &app;
        let reader = reader.clone();
        async move {
            let (s, body) = json_of(
                app.get(&format!("/api/v1/event-definitions{q}"), &reader)
                    .await,
            )
            .await;
            assert_eq!(s, 200, "{q}: {body}");
            body
        }
    };
    let all = list("").await;
    assert_eq!(all["total"], 14, "12 built-ins + 2: {all}");
    let types = |b: &Value| -> Vec<String> {
        b["definitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["event_type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        types(&list("?builtin=false").await),
        ["order.>", "order.created"]
    );
    assert_eq!(
        types(&list("?type_prefix=order.c").await),
        ["order.created"]
    );
    assert_eq!(
        types(&list("?q=cart%20orders").await),
        ["order.created"],
        "text searches ui and description"
    );
    assert_eq!(
        types(&list("?category=business&source=frontend&builtin=false").await),
        ["order.>"],
        "order.created does not allow frontend"
    );
    assert_eq!(list("?category=security").await["total"], 3);
    let page1 = list("?limit=5").await;
    let page3 = list("?limit=5&offset=10").await;
    assert_eq!(page1["definitions"].as_array().unwrap().len(), 5);
    assert_eq!(page1["has_more"], true);
    assert_eq!(page3["definitions"].as_array().unwrap().len(), 4);
    assert_eq!(page3["has_more"], false);
    let (s, bad) = json_of(
        app.get(
            "/api/v1/event-definitions?category=finance&limit=0&colour=red",
            &reader,
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(fields(&bad), ["/category", "/colour", "/limit"]);

    // Scopes: read to read, manage to write.
    assert_eq!(app.get(&location, &ingest).await.status(), 403);
    assert_eq!(
        app.get("/api/v1/event-definitions", &ingest).await.status(),
        403
    );
    assert_eq!(
        app.post("/api/v1/event-definitions", &reader, &order_definition())
            .await
            .status(),
        403
    );
    assert_eq!(
        app.put(&location, &reader, &order_definition())
            .await
            .status(),
        403
    );

    // Another tenant's definition is a plain 404, and its types are its own.
    let other = app.tenant("Globex").await;
    let (s, p) = json_of(app.get(&location, &other.admin_key).await).await;
    assert_eq!(s, 404, "{p}");
    assert_eq!(
        app.put(&location, &other.admin_key, &order_definition())
            .await
            .status(),
        404
    );
    app.define(&other.admin_key, &order_definition()).await;
}

#[tokio::test]
async fn registration_checks_the_schema_examples_and_duplicates() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;

    let mut bad_schema = order_definition();
    bad_schema["payload_schema"]["properties"]["amount"]["minimum"] = json!("zero");
    bad_schema["payload_schema"]["type"] = json!("objekt");
    let (s, p) = json_of(
        app.post("/api/v1/event-definitions", &t.admin_key, &bad_schema)
            .await,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(p["type"], "urn:herald:problem:validation");
    let f = fields(&p);
    assert!(f.contains(&"/payload_schema/type".to_string()), "{p}");
    assert!(
        f.contains(&"/payload_schema/properties/amount/minimum".to_string()),
        "{p}"
    );

    let mut remote = order_definition();
    remote["payload_schema"] = json!({"$ref": "https://schemas.example.com/order.json"});
    remote["examples"] = json!([]);
    assert_eq!(
        app.post("/api/v1/event-definitions", &t.admin_key, &remote)
            .await
            .status(),
        400,
        "no remote $ref"
    );

    let mut bad_example = order_definition();
    bad_example["examples"] = json!([
        {"order_id": "o-1", "amount": 5, "currency": "EUR"},
        {"order_id": "o-2", "amount": "five", "currency": "EUR", "items": [{"qty": 0}]}
    ]);
    let (s, p) = json_of(
        app.post("/api/v1/event-definitions", &t.admin_key, &bad_example)
            .await,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        fields(&p),
        [
            "/examples/1/amount",
            "/examples/1/items/0/qty",
            "/examples/1/items/0/sku"
        ]
    );
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("example 1"),
        "{p}"
    );

    let (s, p) = json_of(
        app.post(
            "/api/v1/event-definitions",
            &t.admin_key,
            &json!({"event_type": "order.*.x*", "category": "finance", "allowed_sources": ["fax"], "colour": "red"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        fields(&p),
        ["/allowed_sources/0", "/category", "/colour", "/event_type"]
    );

    let first = app.define(&t.admin_key, &order_definition()).await;
    let (s, p) = json_of(
        app.post(
            "/api/v1/event-definitions",
            &t.admin_key,
            &order_definition(),
        )
        .await,
    )
    .await;
    assert_eq!(s, 409);
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("PUT") && detail.contains(first["id"].as_str().unwrap()),
        "{p}"
    );

    // A built-in type may be given a schema of the tenant's own, which takes its place.
    let own = app
        .define(
            &t.admin_key,
            &json!({"event_type": "db_error", "category": "system",
            "payload_schema": {"type": "object", "required": ["table"]}}),
        )
        .await;
    let (_, got) = json_of(
        app.get("/api/v1/event-definitions/db_error", &t.admin_key)
            .await,
    )
    .await;
    assert_eq!(got["id"], own["id"]);
    assert_eq!(got["builtin"], false);
    let (s, p) = app
        .create(
            &t.admin_key,
            &json!({"event_type": "db_error", "category": "system"}),
        )
        .await;
    assert_eq!((s, fields(&p)), (400, vec!["/data/table".to_string()]));
    let (s, p) = json_of(
        app.put(
            "/api/v1/event-definitions/builtin.pr_merged",
            &t.admin_key,
            &json!({"category": "delivery"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 409, "built-ins are read-only: {p}");
}

#[tokio::test]
async fn ingest_validates_data_and_sources_listing_every_error() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    app.define(&t.admin_key, &order_definition()).await;

    let (s, p) = app
        .create(
            &t.admin_key,
            &order_event(
                json!({"amount": -5, "currency": "GBP", "items": [{"sku": "a"}, {"qty": "2"}]}),
            ),
        )
        .await;
    assert_eq!(s, 400, "{p}");
    assert_eq!(p["type"], "urn:herald:problem:validation");
    assert_eq!(
        fields(&p),
        [
            "/data/amount",
            "/data/currency",
            "/data/items/1/qty",
            "/data/items/1/sku",
            "/data/order_id"
        ]
    );
    let kinds: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"invalid_type")
            && kinds.contains(&"missing")
            && kinds.contains(&"invalid_value"),
        "{p}"
    );

    // Schema errors and other errors come together.
    let (s, p) = app
        .create(&t.admin_key, &json!({"event_type": "order.created", "category": "business", "timestamp": "yesterday", "data": {}}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        fields(&p),
        [
            "/data/amount",
            "/data/currency",
            "/data/order_id",
            "/timestamp"
        ]
    );

    // A valid event is stored with the version it was checked against.
    let good = json!({"order_id": "o-1", "amount": 1999, "currency": "EUR", "items": [{"sku": "a", "qty": 2}]});
    let (s, e) = app.create(&t.admin_key, &order_event(good.clone())).await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["schema_version"], 1);

    // Allowed sources.
    let mut from_browser = order_event(good.clone());
    from_browser["event_source"] = json!("frontend");
    let (s, p) = app.create(&t.admin_key, &from_browser).await;
    assert_eq!((s, fields(&p)), (400, vec!["/event_source".to_string()]));
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("backend, external_api"),
        "{p}"
    );

    // The category a definition gives its type is enforced.
    let (s, p) = app
        .create(
            &t.admin_key,
            &json!({"event_type": "order.created", "category": "system", "data": good}),
        )
        .await;
    assert_eq!((s, fields(&p)), (400, vec!["/event_type".to_string()]));

    // Batches: item by item, in order, with the same pointers.
    let res = app
        .post(
            "/api/v1/events/batch",
            &t.admin_key,
            &json!([
                order_event(good.clone()),
                order_event(json!({"order_id": 7, "amount": 1, "currency": "EUR"}))
            ]),
        )
        .await;
    assert_eq!(res.status(), 207);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["results"][0]["status"], 201);
    assert_eq!(b["results"][1]["status"], 400);
    assert_eq!(fields(&b["results"][1]["error"]), ["/data/order_id"]);

    // Schemas see the payload as sent; redaction still runs before storing.
    app.define(&t.admin_key, &json!({"event_type": "user.signed_up", "category": "business",
        "payload_schema": {"type": "object", "required": ["email"], "properties": {"email": {"type": "string", "format": "email"}}}}))
        .await;
    let (s, p) = app.create(&t.admin_key, &json!({"event_type": "user.signed_up", "category": "business", "data": {"email": "not-an-email"}})).await;
    assert_eq!((s, fields(&p)), (400, vec!["/data/email".to_string()]));
    let (s, e) = app.create(&t.admin_key, &json!({"event_type": "user.signed_up", "category": "business", "data": {"email": "ada@example.com"}})).await;
    assert_eq!(s, 201, "{e}");
    assert!(
        !e.to_string().contains("ada@example.com"),
        "redacted after validation: {e}"
    );

    // Types without a definition are untouched in permissive mode.
    assert_eq!(
        app.create(
            &t.admin_key,
            &json!({"event_type": "misc.thing", "category": "system", "data": {"x": 1}})
        )
        .await
        .0,
        201
    );
}

#[tokio::test]
async fn exact_definitions_win_over_patterns_and_specific_patterns_over_general_ones() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let req = |field: &str| json!({"type": "object", "required": [field]});
    app.define(
        &t.admin_key,
        &json!({"event_type": "shop.>", "category": "business", "payload_schema": req("any")}),
    )
    .await;
    app.define(&t.admin_key, &json!({"event_type": "shop.order.*", "category": "business", "payload_schema": req("order")})).await;
    app.define(&t.admin_key, &json!({"event_type": "shop.order.paid", "category": "business", "payload_schema": req("paid")})).await;
    let missing = |ty: &'static str| {
        let app = &app;
        let key = t.admin_key.clone();
        async move {
            let (s, p) = app
                .create(
                    &key,
                    &json!({"event_type": ty, "category": "business", "data": {}}),
                )
                .await;
            assert_eq!(s, 400, "{ty}: {p}");
            fields(&p)
        }
    };
    assert_eq!(missing("shop.order.paid").await, ["/data/paid"]);
    assert_eq!(missing("shop.order.shipped").await, ["/data/order"]);
    assert_eq!(missing("shop.cart.item.added").await, ["/data/any"]);
    assert_eq!(
        app.create(
            &t.admin_key,
            &json!({"event_type": "shop", "category": "business", "data": {}})
        )
        .await
        .0,
        201,
        "`>` needs at least one more token"
    );
}

#[tokio::test]
async fn updates_are_versions_and_breaking_changes_need_consent() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let v1 = app.define(&t.admin_key, &order_definition()).await;
    let path = format!("/api/v1/event-definitions/{}", v1["id"].as_str().unwrap());

    // A typed property added to this open object could refuse events that
    // already send `note` with another value: breaking, it says why, and
    // how to go on.
    let mut typed = order_definition();
    typed["payload_schema"]["properties"]["note"] = json!({"type": "string"});
    let (s, refused) = json_of(app.put(&path, &t.admin_key, &typed).await).await;
    assert_eq!(s, 409, "{refused}");
    assert_eq!(fields(&refused), ["/payload_schema/properties/note"]);
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("open object"),
        "{refused}"
    );
    let detail = refused["detail"].as_str().unwrap();
    for how in [
        "?allow_breaking=true",
        "without a type constraint",
        "\"additionalProperties\": false",
    ] {
        assert!(detail.contains(how), "{how} missing from: {detail}");
    }

    // Backward compatible: an optional property that takes any value, a wider enum.
    let mut v2_body = order_definition();
    v2_body["payload_schema"]["properties"]["note"] = json!({"description": "free text"});
    v2_body["payload_schema"]["properties"]["currency"]["enum"] = json!(["EUR", "USD", "GBP"]);
    let (s, v2) = json_of(app.put(&path, &t.admin_key, &v2_body).await).await;
    assert_eq!(s, 200, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["versions"], json!([1, 2]));
    assert_eq!(v2["compatibility"]["level"], "backward");
    assert_eq!(v2["compatibility"]["previous_version"], 1);
    assert_eq!(v2["created_at"], v1["created_at"]);

    // Breaking: a new required field and a removed property. Refused with the reasons...
    let mut v3_body = v2_body.clone();
    v3_body["payload_schema"]["required"] =
        json!(["order_id", "amount", "currency", "customer_id"]);
    v3_body["payload_schema"]["properties"]["customer_id"] = json!({"type": "string"});
    v3_body["payload_schema"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("coupon");
    v3_body["examples"][0]["customer_id"] = json!("c-1");
    let (s, p) = json_of(app.put(&path, &t.admin_key, &v3_body).await).await;
    assert_eq!(s, 409, "{p}");
    assert_eq!(p["type"], "urn:herald:problem:conflict");
    assert_eq!(
        fields(&p),
        [
            "/payload_schema/properties/coupon",
            "/payload_schema/properties/customer_id"
        ]
    );
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("allow_breaking=true"),
        "{p}"
    );
    let (_, still) = json_of(app.get(&path, &t.admin_key).await).await;
    assert_eq!(still["version"], 2, "nothing was stored");

    // ...and accepted with consent.
    let (s, v3) = json_of(
        app.put(
            &format!("{path}?allow_breaking=true"),
            &t.admin_key,
            &v3_body,
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{v3}");
    assert_eq!(v3["version"], 3);
    assert_eq!(v3["compatibility"]["level"], "breaking");

    // Older versions stay readable.
    let (s, old) = json_of(app.get(&format!("{path}?version=1"), &t.admin_key).await).await;
    assert_eq!(s, 200);
    assert_eq!(old["version"], 1);
    assert_eq!(old["payload_schema"], order_definition()["payload_schema"]);
    assert_eq!(old["versions"], json!([1, 2, 3]));
    assert_eq!(
        app.get(&format!("{path}?version=9"), &t.admin_key)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get(&format!("{path}?version=zero"), &t.admin_key)
            .await
            .status(),
        400
    );

    // Ingest follows the update at once; an event may pin an older version.
    let v2_event = json!({"order_id": "o-1", "amount": 10, "currency": "GBP"});
    let (s, p) = app
        .create(&t.admin_key, &order_event(v2_event.clone()))
        .await;
    assert_eq!(
        (s, fields(&p)),
        (400, vec!["/data/customer_id".to_string()])
    );
    let mut pinned = order_event(v2_event.clone());
    pinned["schema_version"] = json!(2);
    let (s, e) = app.create(&t.admin_key, &pinned).await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["schema_version"], 2);
    pinned["schema_version"] = json!(1);
    let (s, p) = app.create(&t.admin_key, &pinned).await;
    assert_eq!(
        (s, fields(&p)),
        (400, vec!["/data/currency".to_string()]),
        "GBP is not in v1's enum"
    );
    pinned["schema_version"] = json!(7);
    let (s, p) = app.create(&t.admin_key, &pinned).await;
    assert_eq!((s, fields(&p)), (400, vec!["/schema_version".to_string()]));
    // No definition: nothing to pin.
    let pin =
        |ty: &str, v: u32| json!({"event_type": ty, "category": "business", "schema_version": v});
    let (s, p) = app
        .create(&t.admin_key, &pin("no.definition.here", 1))
        .await;
    assert_eq!((s, fields(&p)), (400, vec!["/schema_version".to_string()]));
    // A built-in type is shown as version 1, so that version may be pinned,
    // and only that one.
    let (_, builtin) = json_of(
        app.get("/api/v1/event-definitions/checkout_started", &t.admin_key)
            .await,
    )
    .await;
    assert_eq!(builtin["versions"], json!([1]));
    let (s, e) = app.create(&t.admin_key, &pin("checkout_started", 1)).await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["schema_version"], 1);
    let (s, p) = app.create(&t.admin_key, &pin("checkout_started", 2)).await;
    assert_eq!((s, fields(&p)), (400, vec!["/schema_version".to_string()]));
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .ends_with("its versions are: 1"),
        "{p}"
    );

    // The type of a definition is fixed.
    let mut renamed = v3_body.clone();
    renamed["event_type"] = json!("order.placed");
    let (s, p) = json_of(app.put(&path, &t.admin_key, &renamed).await).await;
    assert_eq!(
        (s, fields(&p)),
        (StatusCode::BAD_REQUEST, vec!["/event_type".to_string()])
    );
    // A bad flag is named.
    assert_eq!(
        app.put(
            &format!("{path}?allow_breaking=maybe"),
            &t.admin_key,
            &v3_body
        )
        .await
        .status(),
        400
    );
}

#[tokio::test]
async fn a_fetched_definition_can_be_edited_and_sent_back() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let v1 = app.define(&t.admin_key, &order_definition()).await;
    let path = format!("/api/v1/event-definitions/{}", v1["id"].as_str().unwrap());

    // Twice: version 1 as answered, then version 2, which also carries its
    // compatibility verdict.
    for (edit, want_version) in [("Placed by a customer", 2), ("Placed online", 3)] {
        let (s, mut fetched) = json_of(app.get(&path, &t.admin_key).await).await;
        assert_eq!(s, 200);
        assert_eq!(fetched["latest_version"], want_version - 1, "{fetched}");
        fetched["description"] = json!(edit);
        let (s, next) = json_of(app.put(&path, &t.admin_key, &fetched).await).await;
        assert_eq!(s, 200, "{next}");
        assert_eq!(next["version"], want_version);
        assert_eq!(next["description"], edit);
        assert_eq!(next["compatibility"]["level"], "identical", "{next}");
        for kept in [
            "payload_schema",
            "allowed_sources",
            "examples",
            "ui",
            "event_category",
        ] {
            assert_eq!(next[kept], order_definition()[kept], "{kept}");
        }
    }
}

#[tokio::test]
async fn a_pinned_version_selects_the_schema_only() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let v1 = app.define(&t.admin_key, &order_definition()).await;
    let path = format!("/api/v1/event-definitions/{}", v1["id"].as_str().unwrap());
    let breaking = format!("{path}?allow_breaking=true");

    // Version 2: only the backend may send it, it is a payment, and the
    // currency may be left out.
    let mut v2 = order_definition();
    v2["allowed_sources"] = json!(["backend"]);
    v2["event_category"] = json!("payment");
    v2["payload_schema"]["required"] = json!(["order_id", "amount"]);
    let (s, body) = json_of(app.put(&breaking, &t.admin_key, &v2).await).await;
    assert_eq!(s, 200, "{body}");

    let pinned = |extra: Value| {
        let mut e = order_event(json!({"order_id": "o-1", "amount": 5, "currency": "EUR"}));
        e["schema_version"] = json!(1);
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    };
    // Version 1 allowed external_api; the definition no longer does.
    let (s, p) = app
        .create(
            &t.admin_key,
            &pinned(json!({"event_source": "external_api"})),
        )
        .await;
    assert_eq!(
        (s, fields(&p)),
        (400, vec!["/event_source".to_string()]),
        "{p}"
    );
    assert!(
        p["errors"][0]["message"].as_str().unwrap().contains("v2"),
        "{p}"
    );
    // Version 1 was an order; the definition is a payment now.
    let (s, p) = app
        .create(&t.admin_key, &pinned(json!({"event_category": "order"})))
        .await;
    assert_eq!(
        (s, fields(&p)),
        (400, vec!["/event_category".to_string()]),
        "{p}"
    );
    // The payload is checked against version 1's schema, which needs a currency.
    let (s, p) = app
        .create(
            &t.admin_key,
            &pinned(json!({"data": {"order_id": "o-1", "amount": 5}})),
        )
        .await;
    assert_eq!(
        (s, fields(&p)),
        (400, vec!["/data/currency".to_string()]),
        "{p}"
    );
    let (s, e) = app.create(&t.admin_key, &pinned(json!({}))).await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(
        (&e["schema_version"], &e["event_category"]),
        (&json!(1), &json!("payment"))
    );

    // Version 3 moves the type to another category: a pin does not keep the old one.
    let mut v3 = v2.clone();
    v3["category"] = json!("system");
    v3.as_object_mut().unwrap().remove("event_category");
    let (s, body) = json_of(app.put(&breaking, &t.admin_key, &v3).await).await;
    assert_eq!(s, 200, "{body}");
    let (s, p) = app.create(&t.admin_key, &pinned(json!({}))).await;
    assert_eq!(
        (s, fields(&p)),
        (400, vec!["/event_type".to_string()]),
        "{p}"
    );
    let (s, e) = app
        .create(&t.admin_key, &pinned(json!({"category": "system"})))
        .await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["schema_version"], 1);
}

#[tokio::test]
async fn a_definitions_event_category_is_a_default_and_a_constraint() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    app.define(&t.admin_key, &order_definition()).await;
    let good = json!({"order_id": "o-1", "amount": 5, "currency": "EUR"});

    // None sent: the definition's is filled in, and stored.
    let (s, e) = app.create(&t.admin_key, &order_event(good.clone())).await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["event_category"], "order");
    let (_, stored) = json_of(
        app.get(
            &format!("/api/v1/events/{}", e["event_id"].as_str().unwrap()),
            &t.admin_key,
        )
        .await,
    )
    .await;
    assert_eq!(stored["event_category"], "order", "{stored}");

    // The same one: accepted. Another one: a 400 naming the expected value,
    // in a batch as well, beside any other error.
    let mut same = order_event(good.clone());
    same["event_category"] = json!("order");
    assert_eq!(app.create(&t.admin_key, &same).await.0, 201);
    let mut other = order_event(good.clone());
    other["event_category"] = json!("payment");
    let (s, p) = app.create(&t.admin_key, &other).await;
    assert_eq!(
        (s, fields(&p)),
        (400, vec!["/event_category".to_string()]),
        "{p}"
    );
    let message = p["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("event_category order") && message.contains("not payment"),
        "{p}"
    );
    let mut both = other.clone();
    both["data"]["amount"] = json!(-1);
    let res = app
        .post("/api/v1/events/batch", &t.admin_key, &json!([same, both]))
        .await;
    assert_eq!(res.status(), 207);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["results"][0]["status"], 201, "{b}");
    assert_eq!(
        fields(&b["results"][1]["error"]),
        ["/data/amount", "/event_category"]
    );

    // A definition without one leaves the event's alone.
    app.define(
        &t.admin_key,
        &json!({"event_type": "order.shipped", "category": "business"}),
    )
    .await;
    for (sent, stored) in [(None, Value::Null), (Some("task"), json!("task"))] {
        let mut e = json!({"event_type": "order.shipped", "category": "business"});
        if let Some(c) = sent {
            e["event_category"] = json!(c);
        }
        let (s, got) = app.create(&t.admin_key, &e).await;
        assert_eq!(s, 201, "{got}");
        assert_eq!(got["event_category"], stored, "{got}");
    }
}

#[tokio::test]
async fn dropping_the_schema_or_the_sources_is_allowed_and_reported() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let v1 = app.define(&t.admin_key, &order_definition()).await;
    let path = format!("/api/v1/event-definitions/{}", v1["id"].as_str().unwrap());

    let mut loose = order_definition();
    let m = loose.as_object_mut().unwrap();
    m.remove("payload_schema");
    m.remove("allowed_sources");
    let (s, v2) = json_of(app.put(&path, &t.admin_key, &loose).await).await;
    assert_eq!(s, 200, "{v2}");
    assert_eq!(v2["compatibility"]["level"], "backward");
    let changes: Vec<(String, String, bool)> = v2["compatibility"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["message"].as_str().unwrap().to_string(),
                c["breaking"].as_bool().unwrap(),
            )
        })
        .collect();
    for want in [
        (
            "/payload_schema",
            "schema removed: payloads are no longer validated",
        ),
        (
            "/allowed_sources",
            "allowed_sources removed: every source may now send this type",
        ),
    ] {
        assert!(
            changes.contains(&(want.0.to_string(), want.1.to_string(), false)),
            "{want:?} not in {changes:?}"
        );
    }

    // And it does what it says.
    let mut e = order_event(json!({"anything": true}));
    e["event_source"] = json!("frontend");
    let (s, got) = app.create(&t.admin_key, &e).await;
    assert_eq!(s, 201, "{got}");
    assert_eq!(got["schema_version"], 2);
}

#[tokio::test]
async fn a_draft_7_schema_is_registered_and_enforced_as_draft_7() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    // Tuple `items`, `dependencies` and `definitions` are draft 7's; in
    // 2020-12 an array under `items` is not even a valid schema.
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object", "required": ["point"],
        "definitions": {"coordinate": {"type": "number", "minimum": -180, "maximum": 180}},
        "properties": {
            "point": {"type": "array", "items": [{"$ref": "#/definitions/coordinate"}, {"$ref": "#/definitions/coordinate"}], "additionalItems": false},
            "card": {"type": "string"}, "billing_address": {"type": "string"}
        },
        "dependencies": {"card": ["billing_address"]}
    });
    let defined = app
        .define(
            &t.admin_key,
            &json!({"event_type": "geo.pinged", "category": "system", "payload_schema": schema,
                "examples": [{"point": [13.4, 52.5]}]}),
        )
        .await;
    assert_eq!(defined["payload_schema"], schema, "kept as sent");
    let mut as_2020 = schema.clone();
    as_2020.as_object_mut().unwrap().remove("$schema");
    let (s, p) = json_of(
        app.post(
            "/api/v1/event-definitions",
            &t.admin_key,
            &json!({"event_type": "geo.other", "category": "system", "payload_schema": as_2020}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400, "tuple items are not 2020-12: {p}");
    assert!(
        fields(&p)
            .iter()
            .any(|f| f.starts_with("/payload_schema/properties/point/items")),
        "{p}"
    );

    let ping =
        |data: Value| json!({"event_type": "geo.pinged", "category": "system", "data": data});
    let (s, e) = app
        .create(
            &t.admin_key,
            &ping(json!({"point": [13.4, 52.5], "card": "x", "billing_address": "y"})),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["schema_version"], 1);
    let (s, p) = app
        .create(
            &t.admin_key,
            &ping(json!({"point": [200, 52.5, 1], "card": "x"})),
        )
        .await;
    assert_eq!(s, 400, "{p}");
    assert_eq!(
        fields(&p),
        ["/data/billing_address", "/data/point", "/data/point/0"]
    );
}

#[tokio::test]
async fn strict_mode_refuses_types_without_a_definition() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let reader = app.key(&t, &["read"]).await;
    let (s, settings) = json_of(app.get("/api/v1/settings", &reader).await).await;
    assert_eq!(s, 200);
    assert_eq!(settings["validation_mode"], "permissive");
    assert_eq!(
        app.create(&t.admin_key, &event("misc.unknown", "system"))
            .await
            .0,
        201
    );

    assert_eq!(
        app.put(
            "/api/v1/settings",
            &reader,
            &json!({"validation_mode": "strict"})
        )
        .await
        .status(),
        403
    );
    let (s, p) = json_of(
        app.put(
            "/api/v1/settings",
            &t.admin_key,
            &json!({"validation_mode": "paranoid", "colour": 1}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, fields(&p)),
        (
            StatusCode::BAD_REQUEST,
            vec!["/colour".to_string(), "/validation_mode".to_string()]
        )
    );
    let (s, saved) = json_of(
        app.put(
            "/api/v1/settings",
            &t.admin_key,
            &json!({"validation_mode": "strict"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(saved["validation_mode"], "strict");

    let (s, p) = app
        .create(&t.admin_key, &event("misc.unknown", "system"))
        .await;
    assert_eq!((s, fields(&p)), (400, vec!["/event_type".to_string()]));
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("strict"),
        "{p}"
    );
    assert_eq!(
        app.create(&t.admin_key, &event("db_error", "system"))
            .await
            .0,
        201,
        "built-ins are definitions"
    );
    app.define(
        &t.admin_key,
        &json!({"event_type": "misc.*", "category": "system"}),
    )
    .await;
    assert_eq!(
        app.create(&t.admin_key, &event("misc.unknown", "system"))
            .await
            .0,
        201,
        "now defined by a pattern"
    );

    // Another tenant keeps its own mode.
    let other = app.tenant("Globex").await;
    assert_eq!(
        app.create(&other.admin_key, &event("else.unknown", "system"))
            .await
            .0,
        201
    );

    // Settings and definitions outlive a restart.
    let app = app.restart().await;
    assert_eq!(
        app.create(&t.admin_key, &event("else.unknown", "system"))
            .await
            .0,
        400
    );
    assert_eq!(
        app.create(&t.admin_key, &event("misc.unknown", "system"))
            .await
            .0,
        201
    );
    let (_, settings) = json_of(app.get("/api/v1/settings", &reader).await).await;
    assert_eq!(settings["validation_mode"], "strict");
    let _ = app
        .put(
            "/api/v1/settings",
            &t.admin_key,
            &json!({"validation_mode": "permissive"}),
        )
        .await;
    assert_eq!(
        app.create(&t.admin_key, &event("else.unknown", "system"))
            .await
            .0,
        201
    );
}
