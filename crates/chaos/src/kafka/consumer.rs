//! The consumer group: members that join with the classic protocol (JoinGroup, SyncGroup,
//! Heartbeat), split the partitions as the group leader assigns them, start each partition
//! at the group's committed offset (OffsetFetch), fetch, hand every record to the
//! "application" (the history), and commit after each fetch that delivered something.
//!
//! The assignment is the leader member's, as in Kafka's classic protocol: the partitions in
//! order, dealt in contiguous ranges to the members sorted by id (Kafka's range assignor); it
//! travels through SyncGroup as text ("0,2"), which the coordinator passes on unread.
//!
//! A member rejoins after any error (NOT_COORDINATOR, REBALANCE_IN_PROGRESS,
//! COORDINATOR_LOAD_IN_PROGRESS, a broken connection, ...), and with no member id after
//! UNKNOWN_MEMBER_ID. After a rebalance it starts again from the committed offsets, so the
//! records it delivered but had not committed are delivered again: that replay is the only
//! repetition the checker allows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::conn::{
    topic_name, Brokers, Conn, HEARTBEAT_VERSION, JOIN_GROUP_VERSION, LEAVE_GROUP_VERSION,
    OFFSET_COMMIT_VERSION, OFFSET_FETCH_VERSION, SYNC_GROUP_VERSION,
};
use super::fetch::fetch;
use super::history::{Event, Recorder};
use super::Shared;

/// The members' session timeout: a member unheard of this long is removed. Longer than the
/// nemesis's longest pause of a coordinator is not needed: a paused coordinator loses the
/// leadership, and its group state with it.
const SESSION_TIMEOUT_MS: i32 = 6_000;
const REBALANCE_TIMEOUT_MS: i32 = 8_000;
const HEARTBEAT_EVERY: Duration = Duration::from_millis(1_000);
/// A group call's deadline (a JoinGroup is held up to the rebalance timeout).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const JOIN_TIMEOUT: Duration = Duration::from_millis(REBALANCE_TIMEOUT_MS as u64 + 4_000);
const PROTOCOL: &str = "chaos-range";

pub struct Member {
    pub index: usize,
    pub brokers: Brokers,
    pub topic: String,
    pub group: String,
    pub partitions: i32,
    pub recorder: Recorder,
    pub shared: Arc<Shared>,
}

/// What one generation of membership gave this member.
struct Generation {
    id: i32,
    member_id: String,
    coordinator: Conn,
    /// (partition, next offset to deliver)
    positions: Vec<(i32, i64)>,
}

/// Why a generation ended.
enum End {
    /// Rejoin (with the member id, unless it was forgotten).
    Rejoin(String),
    /// The run is over and the group has read everything.
    Done,
}

impl Member {
    pub fn run(self) {
        let mut member_id = String::new();
        while !self.shared.consumers_done() {
            let generation = match self.join(&mut member_id) {
                Ok(generation) => generation,
                Err(why) => {
                    if why.contains("UnknownMemberId") {
                        member_id.clear();
                    }
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            match self.consume(generation) {
                End::Done => break,
                End::Rejoin(why) => {
                    if why.contains("UnknownMemberId") {
                        member_id.clear();
                    }
                }
            }
        }
    }

    /// Finds the coordinator, joins, syncs and reads the committed offsets.
    fn join(&self, member_id: &mut String) -> Result<Generation, String> {
        let addr = self.brokers.coordinator(&self.group, self.index)?;
        let mut coordinator = Conn::connect(addr).map_err(|e| e.to_string())?;
        let join = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_session_timeout_ms(SESSION_TIMEOUT_MS)
            .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
            .with_member_id(StrBytes::from_string(member_id.clone()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str(PROTOCOL))
                .with_metadata(Bytes::copy_from_slice(self.topic.as_bytes()))]);
        let mut joined =
            coordinator.call(JOIN_GROUP_VERSION, &join, JOIN_TIMEOUT).map_err(|e| e.to_string())?;
        if joined.error_code.err() == Some(ResponseError::MemberIdRequired) {
            // KIP-394: join again with the id the coordinator gave.
            *member_id = joined.member_id.to_string();
            let join = join.with_member_id(joined.member_id.clone());
            joined = coordinator
                .call(JOIN_GROUP_VERSION, &join, JOIN_TIMEOUT)
                .map_err(|e| e.to_string())?;
        }
        if let Some(e) = joined.error_code.err() {
            return Err(format!("JoinGroup: {e:?}"));
        }
        *member_id = joined.member_id.to_string();
        let generation = joined.generation_id;
        let assignments = if joined.leader == joined.member_id {
            let mut members: Vec<StrBytes> =
                joined.members.iter().map(|m| m.member_id.clone()).collect();
            members.sort();
            assign(self.partitions, members.len())
                .into_iter()
                .zip(members)
                .map(|(mine, member)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(member)
                        .with_assignment(Bytes::from(encode(&mine)))
                })
                .collect()
        } else {
            Vec::new()
        };
        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_generation_id(generation)
            .with_member_id(joined.member_id.clone())
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_static_str(PROTOCOL)))
            .with_assignments(assignments);
        let synced =
            coordinator.call(SYNC_GROUP_VERSION, &sync, JOIN_TIMEOUT).map_err(|e| e.to_string())?;
        if let Some(e) = synced.error_code.err() {
            return Err(format!("SyncGroup: {e:?}"));
        }
        let mine = decode(&synced.assignment);
        let call_ns = self.recorder.clock.now_ns();
        let positions = self.committed(&mut coordinator, &mine)?;
        self.recorder.record(
            call_ns,
            Event::Assigned { member: self.index, generation, positions: positions.clone() },
        );
        Ok(Generation { id: generation, member_id: member_id.clone(), coordinator, positions })
    }

    /// The group's committed offsets of `partitions` (0 where there is none).
    fn committed(
        &self,
        coordinator: &mut Conn,
        partitions: &[i32],
    ) -> Result<Vec<(i32, i64)>, String> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(topic_name(&self.topic))
                .with_partition_indexes(partitions.to_vec())]));
        let fetched = coordinator
            .call(OFFSET_FETCH_VERSION, &request, CALL_TIMEOUT)
            .map_err(|e| e.to_string())?;
        if let Some(e) = fetched.error_code.err() {
            return Err(format!("OffsetFetch: {e:?}"));
        }
        let answers: Vec<_> = fetched.topics.iter().flat_map(|t| &t.partitions).collect();
        partitions
            .iter()
            .map(|p| {
                let answer = answers
                    .iter()
                    .find(|a| a.partition_index == *p)
                    .ok_or_else(|| format!("OffsetFetch left out partition {p}"))?;
                if let Some(e) = answer.error_code.err() {
                    return Err(format!("OffsetFetch of partition {p}: {e:?}"));
                }
                Ok((*p, answer.committed_offset.max(0)))
            })
            .collect()
    }

    /// Fetches, delivers and commits until the generation ends.
    fn consume(&self, mut generation: Generation) -> End {
        let mut leader: Option<(SocketAddr, Conn)> = None;
        let mut last_heartbeat = Instant::now();
        loop {
            if self.shared.consumers_done() {
                self.leave(&mut generation);
                return End::Done;
            }
            if last_heartbeat.elapsed() >= HEARTBEAT_EVERY {
                if let Err(why) = self.heartbeat(&mut generation) {
                    return End::Rejoin(why);
                }
                last_heartbeat = Instant::now();
            }
            if generation.positions.is_empty() {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            let delivered = match self.fetch_and_deliver(&mut generation, &mut leader) {
                Ok(delivered) => delivered,
                Err(_) => {
                    leader = None;
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if !delivered.is_empty() {
                if let Err(why) = self.commit(&mut generation, &delivered) {
                    return End::Rejoin(why);
                }
            }
        }
    }

    /// One Fetch at the member's positions; every record is delivered (recorded) in order.
    /// Answers the partitions that advanced.
    fn fetch_and_deliver(
        &self,
        generation: &mut Generation,
        leader: &mut Option<(SocketAddr, Conn)>,
    ) -> Result<Vec<i32>, String> {
        if leader.is_none() {
            let addr = self.brokers.leader(&self.topic, self.index)?;
            *leader = Some((addr, Conn::connect(addr).map_err(|e| e.to_string())?));
        }
        let (_, conn) = leader.as_mut().expect("invariant: connected just above");
        let call_ns = self.recorder.clock.now_ns();
        let answers = fetch(conn, &self.topic, &generation.positions, 300)?;
        let mut advanced = Vec::new();
        let mut trouble = None;
        for (partition, answer) in answers {
            let Some(position) = generation.positions.iter_mut().find(|(p, _)| *p == partition)
            else {
                continue;
            };
            match answer {
                Ok((records, _)) => {
                    for (offset, value) in records {
                        self.recorder.record(
                            call_ns,
                            Event::Delivered {
                                member: self.index,
                                generation: generation.id,
                                partition,
                                offset,
                                value,
                            },
                        );
                        position.1 = offset + 1;
                        self.shared.delivered(partition, offset + 1);
                        if !advanced.contains(&partition) {
                            advanced.push(partition);
                        }
                    }
                }
                Err(why) => trouble = Some(why),
            }
        }
        match trouble {
            Some(why) if advanced.is_empty() => Err(why),
            _ => Ok(advanced),
        }
    }

    /// Commits the positions of `partitions`, recording each partition's outcome.
    fn commit(&self, generation: &mut Generation, partitions: &[i32]) -> Result<(), String> {
        let offsets: Vec<(i32, i64)> =
            generation.positions.iter().filter(|(p, _)| partitions.contains(p)).copied().collect();
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_generation_id_or_member_epoch(generation.id)
            .with_member_id(StrBytes::from_string(generation.member_id.clone()))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(&self.topic))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|(p, offset)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*offset)
                                .with_committed_leader_epoch(-1)
                        })
                        .collect(),
                )]);
        let call_ns = self.recorder.clock.now_ns();
        let answer = generation.coordinator.call(OFFSET_COMMIT_VERSION, &request, CALL_TIMEOUT);
        let errors: Vec<(i32, i16)> = match &answer {
            Ok(response) => response
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| (p.partition_index, p.error_code))
                .collect(),
            Err(_) => Vec::new(),
        };
        let mut trouble = None;
        for (partition, offset) in offsets {
            let code = errors.iter().find(|(p, _)| *p == partition).map(|(_, code)| *code);
            let ok = answer.is_ok() && code == Some(0);
            if !ok {
                trouble = Some(match (&answer, code) {
                    (Err(e), _) => e.to_string(),
                    (Ok(_), Some(code)) => format!("OffsetCommit: {:?}", code.err()),
                    (Ok(_), None) => "OffsetCommit left out a partition".to_string(),
                });
            }
            self.recorder.record(
                call_ns,
                Event::Commit {
                    member: self.index,
                    generation: generation.id,
                    partition,
                    offset,
                    ok,
                },
            );
        }
        trouble.map_or(Ok(()), Err)
    }

    fn heartbeat(&self, generation: &mut Generation) -> Result<(), String> {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_generation_id(generation.id)
            .with_member_id(StrBytes::from_string(generation.member_id.clone()));
        let answer = generation
            .coordinator
            .call(HEARTBEAT_VERSION, &request, CALL_TIMEOUT)
            .map_err(|e| e.to_string())?;
        match answer.error_code.err() {
            None => Ok(()),
            Some(e) => Err(format!("Heartbeat: {e:?}")),
        }
    }

    /// Leaves the group, so the other member need not wait out this one's session.
    fn leave(&self, generation: &mut Generation) {
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_members(vec![MemberIdentity::default()
                .with_member_id(StrBytes::from_string(generation.member_id.clone()))]);
        let _ = generation.coordinator.call(LEAVE_GROUP_VERSION, &request, CALL_TIMEOUT);
    }
}

/// The range assignment: partitions `0..partitions` in contiguous ranges, the first members
/// taking one more when they do not divide evenly (Kafka's range assignor).
pub fn assign(partitions: i32, members: usize) -> Vec<Vec<i32>> {
    let members = members.max(1) as i32;
    let (each, extra) = (partitions / members, partitions % members);
    let mut next = 0;
    (0..members)
        .map(|m| {
            let take = each + i32::from(m < extra);
            let mine = (next..next + take).collect();
            next += take;
            mine
        })
        .collect()
}

fn encode(partitions: &[i32]) -> Vec<u8> {
    partitions.iter().map(i32::to_string).collect::<Vec<_>>().join(",").into_bytes()
}

fn decode(assignment: &[u8]) -> Vec<i32> {
    String::from_utf8_lossy(assignment).split(',').filter_map(|p| p.trim().parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_assignment_covers_every_partition_once() {
        assert_eq!(assign(4, 2), vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(assign(3, 2), vec![vec![0, 1], vec![2]]);
        assert_eq!(assign(1, 2), vec![vec![0], vec![]]);
        assert_eq!(decode(&encode(&[0, 2])), vec![0, 2]);
        assert_eq!(decode(b""), Vec::<i32>::new());
    }
}
