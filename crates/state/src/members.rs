//! The member address book: node id → the addresses a node is reachable at.
//!
//! Raft's membership entries carry only node ids; raftmq puts each joining member's addresses
//! (an encoded [`MemberInfo`]) in the entry's `context`. Keeping them in the state machine —
//! and so in its snapshots — means every node, including one restored from a snapshot, knows
//! how to reach every member without any side channel.

use std::collections::BTreeMap;

use prost::Message as _;
use raftmq_proto::client::MemberInfo;
use raftmq_raft::{ConfChange, ConfChangeKind, NodeId};

#[derive(Clone, Debug, Default)]
pub(crate) struct Members {
    book: BTreeMap<NodeId, MemberInfo>,
}

impl Members {
    pub(crate) fn book(&self) -> &BTreeMap<NodeId, MemberInfo> {
        &self.book
    }

    /// Applies a committed membership change. An add or promote/demote with addresses in its
    /// context records them (the change's node id wins over the one in the context); one with
    /// an empty or undecodable context keeps whatever was known. A removal forgets the node.
    pub(crate) fn apply(&mut self, change: &ConfChange) {
        match change.kind {
            ConfChangeKind::Remove => {
                self.book.remove(&change.node);
            }
            ConfChangeKind::AddVoter | ConfChangeKind::AddLearner => {
                if change.context.is_empty() {
                    return;
                }
                if let Ok(mut info) = MemberInfo::decode(change.context.as_ref()) {
                    info.node_id = change.node;
                    self.book.insert(change.node, info);
                }
            }
        }
    }

    /// Records a member's client (REST) address. Only a member already in the book, and only
    /// a non-empty address: the raft address, which the transport dials, is not changed here.
    pub(crate) fn set_client_address(
        &mut self,
        node: NodeId,
        client_addr: String,
        kafka_addr: String,
    ) -> Result<(), String> {
        if client_addr.is_empty() {
            return Err("the client address is empty".into());
        }
        let info =
            self.book.get_mut(&node).ok_or_else(|| format!("node {node} is not a member"))?;
        info.client_addr = client_addr;
        // Empty: the member has no Kafka listener, or an older raftmq sent the command.
        if !kafka_addr.is_empty() {
            info.kafka_addr = kafka_addr;
        }
        Ok(())
    }

    /// The snapshot form, ordered by node id.
    pub(crate) fn to_proto(&self) -> Vec<MemberInfo> {
        self.book.values().cloned().collect()
    }

    /// Rebuilds the book from its snapshot form, refusing node id 0 and duplicates.
    pub(crate) fn from_proto(members: Vec<MemberInfo>) -> Result<Self, String> {
        let mut book = BTreeMap::new();
        for info in members {
            if info.node_id == 0 {
                return Err("member with node id 0".into());
            }
            let node_id = info.node_id;
            if book.insert(node_id, info).is_some() {
                return Err(format!("member {node_id} appears twice"));
            }
        }
        Ok(Self { book })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn info(node_id: NodeId, raft_addr: &str) -> MemberInfo {
        MemberInfo {
            node_id,
            raft_addr: raft_addr.into(),
            client_addr: format!("{raft_addr}-http"),
            stay_learner: false,
            kafka_addr: String::new(),
        }
    }

    fn change(kind: ConfChangeKind, node: NodeId, context: Bytes) -> ConfChange {
        ConfChange { kind, node, context }
    }

    #[test]
    fn a_member_sets_its_client_address_but_not_a_stranger() {
        let mut members = Members::default();
        let mut founding = info(1, "n1:1");
        founding.client_addr.clear();
        members.apply(&change(ConfChangeKind::AddVoter, 1, founding.encode_to_vec().into()));
        assert_eq!(members.set_client_address(1, "n1:80".into(), "n1:9092".into()), Ok(()));
        let book = members.book().get(&1).expect("a member");
        assert_eq!((book.raft_addr.as_str(), book.client_addr.as_str()), ("n1:1", "n1:80"));
        assert_eq!(book.kafka_addr, "n1:9092");
        let stranger = members.set_client_address(2, "n2:80".into(), String::new());
        assert!(stranger.is_err(), "not a member");
        assert!(members.set_client_address(1, String::new(), String::new()).is_err(), "empty");
        assert_eq!(members.book().get(&1).map(|m| m.client_addr.as_str()), Some("n1:80"));
        // A member without a Kafka listener (or an older raftmq) keeps the address known.
        assert_eq!(members.set_client_address(1, "n1:81".into(), String::new()), Ok(()));
        assert_eq!(members.book().get(&1).map(|m| m.kafka_addr.as_str()), Some("n1:9092"));
    }

    #[test]
    fn adds_keep_addresses_and_removes_drop_them() {
        let mut members = Members::default();
        let context = Bytes::from(info(2, "n2:1").encode_to_vec());
        members.apply(&change(ConfChangeKind::AddLearner, 2, context));
        assert_eq!(members.book().get(&2), Some(&info(2, "n2:1")));

        // A promotion without context keeps the known addresses.
        members.apply(&change(ConfChangeKind::AddVoter, 2, Bytes::new()));
        assert_eq!(members.book().get(&2), Some(&info(2, "n2:1")));

        // New addresses replace old ones.
        let moved = Bytes::from(info(2, "n2:9").encode_to_vec());
        members.apply(&change(ConfChangeKind::AddVoter, 2, moved));
        assert_eq!(members.book().get(&2), Some(&info(2, "n2:9")));

        members.apply(&change(ConfChangeKind::Remove, 2, Bytes::new()));
        assert!(members.book().is_empty());
    }

    #[test]
    fn the_change_decides_the_node_id_and_garbage_context_is_ignored() {
        let mut members = Members::default();
        let wrong_id = Bytes::from(info(7, "n3:1").encode_to_vec());
        members.apply(&change(ConfChangeKind::AddVoter, 3, wrong_id));
        assert_eq!(members.book().get(&3).map(|info| info.node_id), Some(3));

        members.apply(&change(ConfChangeKind::AddVoter, 4, Bytes::from_static(&[0xff, 0xff])));
        assert!(!members.book().contains_key(&4));
    }

    #[test]
    fn snapshot_form_refuses_zero_and_duplicates() {
        assert!(Members::from_proto(vec![info(0, "a")]).is_err());
        assert!(Members::from_proto(vec![info(1, "a"), info(1, "b")]).is_err());
        let restored = Members::from_proto(vec![info(2, "b"), info(1, "a")]);
        assert_eq!(restored.map(|m| m.to_proto()), Ok(vec![info(1, "a"), info(2, "b")]));
    }
}
