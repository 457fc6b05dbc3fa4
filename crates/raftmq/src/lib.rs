//! raftmq node library
