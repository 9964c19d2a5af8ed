//! `GET /health`: the service is up, which store it uses, and (with NATS)
//! what the publisher has done.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::App;

pub async fn health(State(app): State<App>) -> Json<Value> {
    let mut body = json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "store": app.store.kind(),
    });
    if let Some(p) = &app.publisher {
        body["nats"] = json!({
            "connected": p.connected(),
            "published": p.published.load(Ordering::Relaxed),
            "last_error": p.error(),
        });
    }
    Json(body)
}
