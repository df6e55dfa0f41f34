//! The DashOffice relay as a library: storage trait and SQLite store, the sync hub, sessions over
//! QUIC and WebSocket, enrolment and the HTTP API. The `dashoffice-relay` binary wires them up.

// Handlers answer `ApiResult` like the edge node's API; the error is built once per failed request.
#![allow(clippy::result_large_err)]

pub mod console;
pub mod enrol;
pub mod http;
pub mod hub;
pub mod log;
pub mod quic;
pub mod session;
pub mod store;
pub mod whatsapp;
