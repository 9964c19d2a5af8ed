//! The plumbing every route shares: the route table and the OpenAPI
//! document built from it, authentication and scopes, the audit
//! middleware, `GET /metrics`, body reading, query parameters, problem answers and
//! admission control.

pub mod admission;
pub mod audit;
pub mod auth;
pub mod body;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod problem;
pub mod routes;
