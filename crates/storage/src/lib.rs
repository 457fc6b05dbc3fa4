//! raftmq-storage
