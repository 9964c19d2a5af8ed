//! The resources, one module each: its handlers and what they read and
//! answer. Routes reach them through `http::routes::ROUTES`.

pub mod admin;
pub mod collect;
pub mod definitions;
pub mod deliveries;
pub mod events;
pub mod health;
pub mod processors;
pub mod replay;
pub mod settings;
pub mod statistics;
pub mod stories;
pub mod streams;
pub mod subscriptions;
pub mod tail;
pub mod waits;
