//! raftmq node library
pub mod codec;
pub mod state_machine;
