//! Black-box tests of the `dashoffice-edge` binary: every test starts the real process on its own
//! temporary data folder and talks to it over HTTP, or runs its CLI commands, as a user would.

// A test states what must hold; a failed unwrap is a failed expectation, reported with its line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod csv;
mod desktop;
mod durability;
mod errors;
mod i18n;
mod mail;
mod roles;
mod sync;
mod ui;
mod whatsapp;
