//! The DashOffice relay as a library: storage trait and SQLite store, the sync hub, sessions over
//! QUIC and WebSocket, enrolment and the HTTP API. The `dashoffice-relay` binary wires them up.

pub mod enrol;
pub mod http;
pub mod hub;
pub mod quic;
pub mod session;
pub mod store;
