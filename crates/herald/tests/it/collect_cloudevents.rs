//! CloudEvents inbound over real HTTP in the three modes of the HTTP
//! binding, with the spec's own examples: structured, binary (`ce-*`
//! headers) and batched; `source` + `id` deduplicate; every attribute
//! and extension kept.

use herald_testkit::Backend;
use herald_testkit::app::*;
use herald_testkit::problem::read_problem;
use serde_json::{Value, json};

herald_testkit::on_each_backend!(the_three_modes_store_losslessly_and_deduplicate);

/// The CloudEvents JSON format's example event, with a traceparent.
fn spec_example(id: &str) -> Value {
    json!({
        "specversion": "1.0",
        "type": "com.example.someevent",
        "source": "/mycontext",
        "subject": "larger-context",
        "id": id,
        "time": "2018-04-05T17:31:00Z",
        "comexampleextension1": "value",
        "comexampleothervalue": 5,
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "datacontenttype": "application/json",
        "data": {"appinfoA": "abc", "appinfoB": 123, "appinfoC": true}
    })
}

async fn get(app: &TestApp, t: &Tenant, id: &str) -> Value {
    app.get(&format!("/api/v1/events/{id}"), &t.admin_key)
        .await
        .json()
        .await
        .unwrap()
}

async fn the_three_modes_store_losslessly_and_deduplicate(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("Acme").await;
    let key = app.key(&t, &["ingest"]).await;
    let structured = |body: Value| {
        app.client
            .post(app.url("/api/v1/events/cloudevents"))
            .bearer_auth(&key)
            .header(
                "content-type",
                "application/cloudevents+json; charset=UTF-8",
            )
            .body(body.to_string())
            .send()
    };
    let res = structured(spec_example("A234-1234-1234")).await.unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let e = get(&app, &t, &id).await;
    assert_eq!(e["event_type"], "com.example.someevent");
    assert_eq!(e["event_source"], "external_api");
    assert_eq!(e["object"]["resource_id"], "larger-context");
    assert!(
        e["timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2018-04-05T17:31:00")
    );
    assert_eq!(
        e["data"],
        json!({"appinfoA": "abc", "appinfoB": 123, "appinfoC": true})
    );
    assert_eq!(
        e["correlation"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let ce = &e["metadata"]["cloudevents"];
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["source"], "/mycontext");
    assert_eq!(ce["id"], "A234-1234-1234");
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["extensions"]["comexampleextension1"], "value");
    assert_eq!(ce["extensions"]["comexampleothervalue"], 5);
    // The same source + id again: nothing new, the first event's id.
    let res = structured(spec_example("A234-1234-1234")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["event_id"], id.as_str());

    // Binary mode: the HTTP binding's example, attributes in headers.
    let res = app
        .client
        .post(app.url("/api/v1/events/cloudevents"))
        .bearer_auth(&key)
        .header("ce-specversion", "1.0")
        .header("ce-type", "com.example.someevent")
        .header("ce-time", "2018-04-05T03:56:24Z")
        .header("ce-id", "1234-1234-1234")
        .header("ce-source", "/mycontext/subcontext")
        .header("ce-comexampleextension1", "caf%C3%A9")
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"action": "ran"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let e = get(&app, &t, &id).await;
    assert_eq!(e["data"], json!({"action": "ran"}));
    assert_eq!(
        e["metadata"]["cloudevents"]["source"],
        "/mycontext/subcontext"
    );
    assert_eq!(
        e["metadata"]["cloudevents"]["datacontenttype"],
        "application/json; charset=utf-8"
    );
    assert_eq!(
        e["metadata"]["cloudevents"]["extensions"]["comexampleextension1"],
        "café"
    );
    // Text data in binary mode is kept as text.
    let res = app
        .client
        .post(app.url("/api/v1/events/cloudevents"))
        .bearer_auth(&key)
        .header("ce-specversion", "1.0")
        .header("ce-type", "com.example.text")
        .header("ce-id", "t-1")
        .header("ce-source", "/text")
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get(&app, &t, &id).await["data"], "hello");

    // Batched: one new, one repeat, one without specversion.
    let mut bad = spec_example("B-3");
    bad.as_object_mut().unwrap().remove("specversion");
    let res = app
        .client
        .post(app.url("/api/v1/events/cloudevents"))
        .bearer_auth(&key)
        .header("content-type", "application/cloudevents-batch+json")
        .body(json!([spec_example("B-1"), spec_example("A234-1234-1234"), bad]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 207);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["count"], 1);
    assert!(body["event_ids"][1].is_string());
    assert_eq!(body["event_ids"][2], Value::Null);
    assert_eq!(body["errors"][0]["index"], 2);
    assert_eq!(
        body["errors"][0]["error"]["errors"][0]["field"],
        "/specversion"
    );
}

#[tokio::test]
async fn bad_cloudevents_are_named_field_by_field() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let key = app.key(&t, &["ingest"]).await;
    let res = app
        .client
        .post(app.url("/api/v1/events/cloudevents"))
        .bearer_auth(&key)
        .header("content-type", "application/cloudevents+json")
        .body(json!({"specversion": "0.3", "id": "", "source": 5}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        read_problem(res).await.fields,
        ["/id", "/source", "/specversion", "/type"]
    );
    // Binary mode names the headers.
    let res = app
        .client
        .post(app.url("/api/v1/events/cloudevents"))
        .bearer_auth(&key)
        .header("ce-specversion", "1.0")
        .header("ce-id", "x")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(read_problem(res).await.fields, ["/ce-source", "/ce-type"]);
    // Neither mode: 415 saying how.
    let res = app
        .client
        .post(app.url("/api/v1/events/cloudevents"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    // A read key cannot ingest.
    let read = app.key(&t, &["read"]).await;
    let res = app
        .client
        .post(app.url("/api/v1/events/cloudevents"))
        .bearer_auth(&read)
        .header("content-type", "application/cloudevents+json")
        .body(spec_example("r").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
