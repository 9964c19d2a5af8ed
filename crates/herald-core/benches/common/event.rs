//! The typical event both the benchmark and the profiling example use.

/// A checkout payment: actor with an email to hash, object ids, trace
/// context, outcome, context and a small payload. ~600 bytes.
pub const EVENT: &str = r#"{"event_type":"payment_authorized","category":"business","event_source":"backend","timestamp":"2025-12-30T10:00:00.123456+01:00","actor":{"user_id":"user_4821","email":"Ada.Lovelace@example.com","role":"customer"},"object":{"order_id":"ord_99812","session_id":"sess_77aa","request_id":"req_1f2e3d"},"correlation":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"},"outcome":{"status":"success"},"context":{"environment":"production","service":"checkout","endpoint":"/pay","version":"1.4.2"},"data":{"amount":1999,"currency":"EUR","items":[{"sku":"W-1","qty":2},{"sku":"G-7","qty":1}],"method":"card","coupon":"WINTER10"}}"#;
