//! Checks of an `application/problem+json` answer: its content type, its
//! `status` (the same in the body as on the wire), its `title`, and the set
//! of `errors[].field` pointers it names.

use serde_json::Value;

/// A problem answer taken apart.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The HTTP status (the body's `status` is checked to agree).
    pub status: u16,
    /// The `title`, or `""` when missing.
    pub title: String,
    /// Every `errors[].field`, sorted.
    pub fields: Vec<String>,
    /// The whole body.
    pub body: Value,
}

/// Reads a problem answer, asserting it is `application/problem+json` with
/// the body's `status` equal to the HTTP status.
pub async fn read_problem(res: reqwest::Response) -> Problem {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("(not text)").to_string());
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "status {status}: {body}"
    );
    assert_eq!(body["status"], status, "the body's status: {body}");
    let mut fields: Vec<String> = body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["field"].as_str().unwrap_or("(no field)").to_string())
                .collect()
        })
        .unwrap_or_default();
    fields.sort();
    Problem {
        status,
        title: body["title"].as_str().unwrap_or_default().to_string(),
        fields,
        body,
    }
}

/// Asserts a problem answer's status, title and named fields (in any
/// order); returns its body for further checks.
pub async fn assert_problem(
    res: reqwest::Response,
    status: u16,
    title: &str,
    fields: &[&str],
) -> Value {
    let p = read_problem(res).await;
    let mut want: Vec<&str> = fields.to_vec();
    want.sort_unstable();
    assert_eq!(
        (
            p.status,
            p.title.as_str(),
            p.fields.iter().map(String::as_str).collect::<Vec<_>>()
        ),
        (status, title, want),
        "(status, title, fields) of {}",
        p.body
    );
    p.body
}
