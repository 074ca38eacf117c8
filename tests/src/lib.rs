//! Test support: paths of the guest modules built from source by `build.rs`.
//!
//! Every crate under `tests/guests/` (and the `guest-template/`) is compiled to
//! WebAssembly when this crate is built; [`guests`] holds one constant per module,
//! named after the crate in SCREAMING_SNAKE_CASE, with the path of its `.wasm` file.
//! [`broker`] starts the real `rustmq-broker` binary for end-to-end tests, and
//! [`http`] talks JSON to it; [`guide`] holds the deployment guide's literal inputs; [`topics`] reads and
//! writes topics in process; [`kafka`] starts the Kafka-protocol servers (tansu, noida-db) that
//! Kafka-cluster tests run against, and reads and writes their topics.

pub mod broker;
pub mod guide;
pub mod http;
pub mod kafka;
pub mod topics;

/// Paths of the guest modules built for this test run.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}
