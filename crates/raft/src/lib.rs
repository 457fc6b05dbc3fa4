//! raftmq-raft (module doc written with the core).
pub mod message;
pub mod types;
pub use message::*;
pub use types::*;
