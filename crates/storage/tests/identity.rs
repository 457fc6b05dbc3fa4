//! A data dir belongs to one node of one cluster.

mod common;

use std::fs;

use common::*;
use raftmq_storage::{Identity, Storage, StorageError};

#[test]
fn another_node_or_cluster_is_refused_with_both_named() {
    let tmp = tempfile::tempdir().expect("temp dir");
    drop(open(tmp.path(), 1 << 20));
    for (node_id, cluster_id) in [(2, "test-cluster"), (1, "other-cluster")] {
        let other = Identity { node_id, cluster_id: cluster_id.into() };
        let err = Storage::open(tmp.path(), &other, opts(1 << 20)).expect_err("refused");
        let message = err.to_string();
        assert!(matches!(err, StorageError::IdentityMismatch { .. }), "{message}");
        assert!(message.contains("node 1 of cluster \"test-cluster\""), "{message}");
        assert!(
            message.contains(&format!("node {node_id} of cluster \"{cluster_id}\"")),
            "{message}"
        );
    }
    open(tmp.path(), 1 << 20); // the owner still opens it
}

#[test]
fn raft_data_without_an_identity_file_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    {
        let (mut storage, _) = open(tmp.path(), 1 << 20);
        storage.append(&entries(1..=3, 1, 0)).expect("append");
        storage.sync().expect("sync");
    }
    fs::remove_file(tmp.path().join("identity")).expect("remove identity");
    let err = try_open(tmp.path(), 1 << 20).expect_err("refused");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
}

#[test]
fn node_zero_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let zero = Identity { node_id: 0, cluster_id: "c".into() };
    let err = Storage::open(tmp.path(), &zero, opts(1 << 20)).expect_err("refused");
    assert!(matches!(err, StorageError::InvalidIdentity(_)), "{err}");
}
