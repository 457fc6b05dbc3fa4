//! Consumer groups' committed offsets: for each group, the next offset it reads in each
//! partition, as Kafka's OffsetCommit records them and OffsetFetch reads them back.
//!
//! Only the offsets are replicated; a group's membership lives in the Raft leader's memory
//! (docs/kafka.md, "Consumer groups"), so a commit is the one group operation that must
//! survive a leader change.
//!
//! The rules:
//! - a commit is all or nothing: every partition it names must exist, else nothing is stored;
//! - a group id is 1 to [`MAX_GROUP_ID_BYTES`] bytes, a commit names 1 to
//!   [`MAX_OFFSETS_PER_COMMIT`] partitions, a metadata string is at most
//!   [`MAX_METADATA_BYTES`], an offset is 0 or more: what one command can make the state
//!   machine hold stays bounded;
//! - a later commit replaces a partition's offset, whatever its value (Kafka lets a group
//!   rewind);
//! - deleting a topic drops every group's offsets of it; a group with none left is gone;
//! - a group's offsets can be forgotten, some partitions or all (Kafka's OffsetDelete and
//!   DeleteGroups); forgetting what was never committed changes nothing.

use std::collections::BTreeMap;

use raftmq_proto::client::{CommitOffsets, CommittedOffset, DeleteGroupOffsets, GroupOffsetsImage};

/// The longest group id, in bytes (a topic name's limit).
pub const MAX_GROUP_ID_BYTES: usize = 255;
/// The most partitions one commit may name.
pub const MAX_OFFSETS_PER_COMMIT: usize = 10_000;
/// The longest metadata string, in bytes (Kafka's `offset.metadata.max.bytes` default).
pub const MAX_METADATA_BYTES: usize = 4096;

/// One partition's committed position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_time_ms: u64,
}

/// Every group's committed offsets: group id → (topic, partition) → position.
#[derive(Clone, Debug, Default)]
pub struct GroupOffsets {
    groups: BTreeMap<String, BTreeMap<(String, u32), Committed>>,
}

impl GroupOffsets {
    /// Checks `commit` against the bounds and `exists` (whether a partition exists), then
    /// stores every offset at log time `now_ms`. Refused, it changes nothing.
    pub(crate) fn commit(
        &mut self,
        commit: &CommitOffsets,
        now_ms: u64,
        exists: impl Fn(&str, u32) -> bool,
    ) -> Result<(), String> {
        check_group_id(&commit.group_id)?;
        if commit.offsets.is_empty() || commit.offsets.len() > MAX_OFFSETS_PER_COMMIT {
            return Err(format!(
                "a commit names 1 to {MAX_OFFSETS_PER_COMMIT} partitions, not {}",
                commit.offsets.len()
            ));
        }
        for o in &commit.offsets {
            if !exists(&o.topic, o.partition) {
                return Err(format!("no partition {} of topic {:?}", o.partition, o.topic));
            }
            if o.offset < 0 {
                return Err(format!(
                    "offset {} of {:?}/{} is negative",
                    o.offset, o.topic, o.partition
                ));
            }
            if o.metadata.len() > MAX_METADATA_BYTES {
                return Err(format!("a metadata string is at most {MAX_METADATA_BYTES} bytes"));
            }
        }
        let group = self.groups.entry(commit.group_id.clone()).or_default();
        for o in &commit.offsets {
            let committed = Committed {
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata.clone(),
                commit_time_ms: now_ms,
            };
            group.insert((o.topic.clone(), o.partition), committed);
        }
        Ok(())
    }

    /// Forgets the offsets `delete` names (all of the group's when it names none); answers
    /// how many were forgotten. Refused (a bad group id, too many partitions), it changes
    /// nothing.
    pub(crate) fn delete(&mut self, delete: &DeleteGroupOffsets) -> Result<usize, String> {
        check_group_id(&delete.group_id)?;
        if delete.partitions.len() > MAX_OFFSETS_PER_COMMIT {
            return Err(format!(
                "a deletion names at most {MAX_OFFSETS_PER_COMMIT} partitions, not {}",
                delete.partitions.len()
            ));
        }
        let Some(offsets) = self.groups.get_mut(&delete.group_id) else { return Ok(0) };
        let forgotten = if delete.partitions.is_empty() {
            offsets.len()
        } else {
            let before = offsets.len();
            for p in &delete.partitions {
                offsets.remove(&(p.topic.clone(), p.partition));
            }
            before - offsets.len()
        };
        if delete.partitions.is_empty() || offsets.is_empty() {
            self.groups.remove(&delete.group_id);
        }
        Ok(forgotten)
    }

    /// The committed position of `group` in a partition, if any.
    pub fn get(&self, group: &str, topic: &str, partition: u32) -> Option<&Committed> {
        self.groups.get(group)?.get(&(topic.to_owned(), partition))
    }

    /// Every partition `group` committed, ordered by (topic, partition).
    pub fn of_group(&self, group: &str) -> impl Iterator<Item = (&str, u32, &Committed)> {
        self.groups.get(group).into_iter().flatten().map(|((t, p), c)| (t.as_str(), *p, c))
    }

    /// Every group with committed offsets, ordered by id.
    pub fn group_ids(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// Drops every group's offsets of `topic` (the topic was deleted).
    pub(crate) fn remove_topic(&mut self, topic: &str) {
        for offsets in self.groups.values_mut() {
            offsets.retain(|(t, _), _| t != topic);
        }
        self.groups.retain(|_, offsets| !offsets.is_empty());
    }

    /// The snapshot form, ordered by group id, then (topic, partition).
    pub(crate) fn to_proto(&self) -> Vec<GroupOffsetsImage> {
        self.groups
            .iter()
            .map(|(group_id, offsets)| GroupOffsetsImage {
                group_id: group_id.clone(),
                offsets: offsets
                    .iter()
                    .map(|((topic, partition), c)| CommittedOffset {
                        topic: topic.clone(),
                        partition: *partition,
                        offset: c.offset,
                        metadata: c.metadata.clone(),
                        leader_epoch: c.leader_epoch,
                        commit_time_ms: c.commit_time_ms,
                    })
                    .collect(),
            })
            .collect()
    }

    /// Rebuilds the offsets from their snapshot form, refusing what no log could have made:
    /// a bad or repeated group id, an empty group, an offset of a partition that does not
    /// exist, a negative offset, a repeated partition or an oversized metadata string.
    pub(crate) fn from_proto(
        images: Vec<GroupOffsetsImage>,
        exists: impl Fn(&str, u32) -> bool,
    ) -> Result<Self, String> {
        let mut groups = BTreeMap::new();
        for image in images {
            check_group_id(&image.group_id)?;
            if image.offsets.is_empty() {
                return Err(format!("group {:?} has no committed offset", image.group_id));
            }
            let mut offsets = BTreeMap::new();
            for o in image.offsets {
                if !exists(&o.topic, o.partition) || o.offset < 0 {
                    return Err(format!(
                        "group {:?} commits offset {} of the partition {:?}/{}, which cannot be",
                        image.group_id, o.offset, o.topic, o.partition
                    ));
                }
                if o.metadata.len() > MAX_METADATA_BYTES {
                    return Err(format!("group {:?} has oversized metadata", image.group_id));
                }
                let committed = Committed {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata,
                    commit_time_ms: o.commit_time_ms,
                };
                if offsets.insert((o.topic.clone(), o.partition), committed).is_some() {
                    return Err(format!(
                        "group {:?} repeats {:?}/{}",
                        image.group_id, o.topic, o.partition
                    ));
                }
            }
            if groups.insert(image.group_id.clone(), offsets).is_some() {
                return Err(format!("group {:?} is repeated", image.group_id));
            }
        }
        Ok(GroupOffsets { groups })
    }
}

fn check_group_id(group_id: &str) -> Result<(), String> {
    if group_id.is_empty() || group_id.len() > MAX_GROUP_ID_BYTES {
        return Err(format!(
            "a group id is 1 to {MAX_GROUP_ID_BYTES} bytes, not {}",
            group_id.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exists(topic: &str, partition: u32) -> bool {
        topic == "t" && partition < 4
    }

    fn offset(topic: &str, partition: u32, offset: i64) -> CommittedOffset {
        CommittedOffset {
            topic: topic.into(),
            partition,
            offset,
            leader_epoch: -1,
            ..CommittedOffset::default()
        }
    }

    fn forget(group: &str, partitions: &[(&str, u32)]) -> DeleteGroupOffsets {
        let partitions = partitions
            .iter()
            .map(|(topic, partition)| raftmq_proto::client::GroupPartition {
                topic: (*topic).into(),
                partition: *partition,
            })
            .collect();
        DeleteGroupOffsets { group_id: group.into(), partitions }
    }

    #[test]
    fn offsets_are_forgotten_by_partition_or_by_group() {
        let mut groups = GroupOffsets::default();
        let offsets = vec![offset("t", 0, 5), offset("t", 1, 6), offset("t", 2, 7)];
        groups.commit(&commit("a", offsets.clone()), 1, exists).unwrap();
        groups.commit(&commit("b", offsets), 1, exists).unwrap();

        assert_eq!(groups.delete(&forget("a", &[("t", 1), ("t", 3), ("u", 0)])), Ok(1));
        assert!(groups.get("a", "t", 1).is_none(), "forgotten");
        assert_eq!(groups.get("a", "t", 0).map(|c| c.offset), Some(5), "the others kept");
        assert_eq!(groups.delete(&forget("a", &[("t", 0), ("t", 2)])), Ok(2));
        assert_eq!(groups.group_ids().collect::<Vec<_>>(), ["b"], "a group with none left is gone");

        assert_eq!(groups.delete(&forget("b", &[])), Ok(3), "none named: the whole group");
        assert_eq!(groups.group_ids().count(), 0);
        assert_eq!(groups.delete(&forget("b", &[])), Ok(0), "an unknown group: nothing to do");
        assert!(groups.delete(&forget("", &[])).is_err(), "a bad group id is refused");
    }

    fn commit(group: &str, offsets: Vec<CommittedOffset>) -> CommitOffsets {
        CommitOffsets { group_id: group.into(), offsets }
    }

    #[test]
    fn a_commit_stores_every_offset_and_a_later_one_replaces_it() {
        let mut g = GroupOffsets::default();
        g.commit(&commit("g", vec![offset("t", 0, 5), offset("t", 3, 7)]), 10, exists).unwrap();
        g.commit(&commit("g", vec![offset("t", 0, 2)]), 20, exists).unwrap();
        let c = g.get("g", "t", 0).unwrap();
        assert_eq!((c.offset, c.commit_time_ms), (2, 20), "a group may rewind");
        assert_eq!(g.get("g", "t", 3).unwrap().offset, 7);
        assert!(g.get("g", "t", 1).is_none());
        assert!(g.get("h", "t", 0).is_none());
    }

    #[test]
    fn a_refused_commit_changes_nothing() {
        let mut g = GroupOffsets::default();
        g.commit(&commit("g", vec![offset("t", 0, 1)]), 1, exists).unwrap();
        let before = g.to_proto();
        let refused = [
            commit("g", vec![offset("t", 0, 9), offset("t", 4, 1)]),
            commit("g", vec![offset("t", 0, 9), offset("u", 0, 1)]),
            commit("g", vec![offset("t", 0, -1)]),
            commit("", vec![offset("t", 0, 9)]),
            commit(&"x".repeat(MAX_GROUP_ID_BYTES + 1), vec![offset("t", 0, 9)]),
            commit("g", vec![]),
            commit("g", vec![offset("t", 0, 9); MAX_OFFSETS_PER_COMMIT + 1]),
            commit(
                "g",
                vec![CommittedOffset {
                    metadata: "m".repeat(MAX_METADATA_BYTES + 1),
                    ..offset("t", 0, 9)
                }],
            ),
        ];
        for c in &refused {
            assert!(g.commit(c, 2, exists).is_err(), "{:?}", &c.group_id);
            assert_eq!(g.to_proto(), before, "refused: {:?}", &c.group_id);
        }
        // The bounds themselves are accepted.
        let at_bounds = commit(
            &"x".repeat(MAX_GROUP_ID_BYTES),
            vec![CommittedOffset { metadata: "m".repeat(MAX_METADATA_BYTES), ..offset("t", 0, 0) }],
        );
        assert!(g.commit(&at_bounds, 3, exists).is_ok());
    }

    #[test]
    fn deleting_a_topic_drops_its_offsets_and_empty_groups() {
        let mut g = GroupOffsets::default();
        g.commit(&commit("a", vec![offset("t", 0, 1)]), 1, |_, _| true).unwrap();
        g.commit(&commit("b", vec![offset("t", 1, 1), offset("u", 0, 4)]), 1, |_, _| true).unwrap();
        g.remove_topic("t");
        assert_eq!(g.group_ids().collect::<Vec<_>>(), ["b"]);
        assert_eq!(
            g.of_group("b").map(|(t, p, c)| (t, p, c.offset)).collect::<Vec<_>>(),
            [("u", 0, 4)]
        );
    }

    #[test]
    fn the_snapshot_form_round_trips_and_impossible_images_are_refused() {
        let mut g = GroupOffsets::default();
        let meta = CommittedOffset { metadata: "m".into(), leader_epoch: 3, ..offset("t", 2, 8) };
        g.commit(&commit("b", vec![meta, offset("t", 0, 1)]), 5, exists).unwrap();
        g.commit(&commit("a", vec![offset("t", 1, 1)]), 6, exists).unwrap();
        let images = g.to_proto();
        assert_eq!(images.iter().map(|i| i.group_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let restored = GroupOffsets::from_proto(images.clone(), exists).unwrap();
        assert_eq!(restored.to_proto(), images);
        assert_eq!(restored.get("b", "t", 2).unwrap().metadata, "m");

        let mut repeated_group = images.clone();
        repeated_group.push(images[0].clone());
        let mut repeated_partition = images.clone();
        let first = repeated_partition[1].offsets[0].clone();
        repeated_partition[1].offsets.push(first);
        let mut unknown = images.clone();
        unknown[0].offsets[0].topic = "u".into();
        let mut negative = images.clone();
        negative[0].offsets[0].offset = -1;
        let mut empty = images.clone();
        empty[0].offsets.clear();
        for bad in [repeated_group, repeated_partition, unknown, negative, empty] {
            assert!(GroupOffsets::from_proto(bad, exists).is_err());
        }
    }
}
