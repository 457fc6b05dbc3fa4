//! Client sessions: what makes a retried write (or consume) take effect exactly once.
//!
//! A client that retries after a timeout cannot know whether its first attempt committed.
//! Following the Raft dissertation (§6.3), every command carries `(client_id, seq)`, and the
//! state machine remembers per client the last `seq` it applied and the result it gave. A retry
//! of that `seq` gets the saved result back without being applied again — so a retried consume
//! returns the same message and leaves the next one in the queue — and an older `seq` is
//! refused as stale.
//!
//! A `(client_id, seq)` names ONE request: the session also keeps a digest of the request it
//! applied under `last_seq`, and a different request under that seq (another message, another
//! kind of command) is refused as a reused seq instead of being answered with the first
//! request's result — which would report a success for something never done.
//!
//! Sessions cannot live forever, and the state machine has no clock of its own: it expires a
//! session once the log's own time (the largest `Command.timestamp_ms` applied, set by the
//! leader) has moved more than the TTL past the session's last command. Every replica applies
//! the same commands with the same timestamps, so every replica expires the same sessions at
//! the same index.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;
use raftmq_proto::client::{command, ClientSession, Command, CommandResult};

/// The longest client id accepted, in bytes: ids are kept in memory and in every snapshot.
pub const MAX_CLIENT_ID_BYTES: usize = 255;

/// What the session table says about an incoming `(client_id, seq)`.
#[derive(Debug, PartialEq)]
pub(crate) enum SessionCheck<'a> {
    /// Not seen before: apply it and [`Sessions::record`] the result.
    New,
    /// A retry of the last applied command: answer with its saved result.
    Duplicate(&'a CommandResult),
    /// The last applied seq again, but for a different request: refuse it.
    Reused,
    /// Older than the last applied command: refuse it.
    Stale { last_seq: u64 },
}

#[derive(Clone, Debug, PartialEq)]
struct Session {
    last_seq: u64,
    last_result: CommandResult,
    /// The digest of the request applied under `last_seq`; `None` (restored from a snapshot
    /// written before digests) takes any request under that seq as its retry.
    last_digest: Option<u64>,
    last_active_ms: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Sessions {
    ttl_ms: u64,
    /// Ordered by client id, so the snapshot lists sessions in a stable order.
    by_client: BTreeMap<String, Session>,
    /// `(last_active_ms, client_id)` of every session, oldest first: expiry pops from the
    /// front instead of scanning every session on every command.
    by_activity: BTreeSet<(u64, String)>,
}

impl Sessions {
    pub(crate) fn new(ttl_ms: u64) -> Self {
        Self { ttl_ms, by_client: BTreeMap::new(), by_activity: BTreeSet::new() }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_client.len()
    }

    /// Drops every session idle for longer than the TTL at log time `now_ms`.
    pub(crate) fn expire_idle(&mut self, now_ms: u64) {
        while let Some((last_active_ms, _)) = self.by_activity.first() {
            if now_ms.saturating_sub(*last_active_ms) <= self.ttl_ms {
                break;
            }
            let (_, client_id) =
                self.by_activity.pop_first().expect("invariant: first() just returned an entry");
            self.by_client.remove(&client_id);
        }
    }

    /// What to do with request `digest` (see [`request_digest`]) under `(client_id, seq)`.
    pub(crate) fn check(&self, client_id: &str, seq: u64, digest: u64) -> SessionCheck<'_> {
        match self.by_client.get(client_id) {
            None => SessionCheck::New,
            Some(session) if seq > session.last_seq => SessionCheck::New,
            Some(session) if seq == session.last_seq => match session.last_digest {
                Some(last) if last != digest => SessionCheck::Reused,
                _ => SessionCheck::Duplicate(&session.last_result),
            },
            Some(session) => SessionCheck::Stale { last_seq: session.last_seq },
        }
    }

    /// Remembers that `client_id` applied request `digest` as `seq` with `result` at log time
    /// `now_ms`.
    pub(crate) fn record(
        &mut self,
        client_id: &str,
        seq: u64,
        digest: Option<u64>,
        result: CommandResult,
        now_ms: u64,
    ) {
        let session = Session {
            last_seq: seq,
            last_result: result,
            last_digest: digest,
            last_active_ms: now_ms,
        };
        if let Some(previous) = self.by_client.insert(client_id.to_owned(), session) {
            self.by_activity.remove(&(previous.last_active_ms, client_id.to_owned()));
        }
        self.by_activity.insert((now_ms, client_id.to_owned()));
    }

    /// The snapshot form, ordered by client id.
    pub(crate) fn to_proto(&self) -> Vec<ClientSession> {
        self.by_client
            .iter()
            .map(|(client_id, session)| ClientSession {
                client_id: client_id.clone(),
                last_seq: session.last_seq,
                last_result: Some(session.last_result.clone()),
                last_active_ms: session.last_active_ms,
                last_request_digest: session.last_digest,
            })
            .collect()
    }

    /// Rebuilds the sessions from their snapshot form, refusing ids this state machine would
    /// never have kept (empty, too long, duplicate) and sessions without a saved result. A
    /// result saved in an older form is read into today's (`legacy`).
    pub(crate) fn from_proto(ttl_ms: u64, sessions: Vec<ClientSession>) -> Result<Self, String> {
        let mut restored = Sessions::new(ttl_ms);
        for ClientSession {
            client_id,
            last_seq,
            last_result,
            last_active_ms,
            last_request_digest,
        } in sessions
        {
            if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID_BYTES {
                return Err(format!("session with an invalid client id {client_id:?}"));
            }
            if restored.by_client.contains_key(&client_id) {
                return Err(format!("session {client_id:?} appears twice"));
            }
            let last_result =
                last_result.ok_or_else(|| format!("session {client_id:?} has no saved result"))?;
            let last_result = crate::legacy::upgrade_result(last_result)
                .map_err(|why| format!("session {client_id:?}: {why}"))?;
            restored.record(&client_id, last_seq, last_request_digest, last_result, last_active_ms);
        }
        Ok(restored)
    }
}

/// The digest that tells one request from another under the same `(client_id, seq)`: 64-bit
/// FNV-1a of the command's kind, encoded. The leader's timestamp stays out (a retry is stamped
/// anew), and so do the client id and seq (they are the key). prost encodes fields in number
/// order, so every replica computes the same digest from the same entry.
pub(crate) fn request_digest(kind: &Option<command::Kind>) -> u64 {
    let bare = Command { client_id: String::new(), seq: 0, timestamp_ms: 0, kind: kind.clone() };
    super::snapshot::fnv1a_64(&bare.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results;

    #[test]
    fn same_seq_is_a_duplicate_and_lower_is_stale() {
        let mut sessions = Sessions::new(1000);
        assert_eq!(sessions.check("c", 5, 1), SessionCheck::New);
        sessions.record("c", 5, Some(1), results::ok(), 0);
        assert_eq!(sessions.check("c", 5, 1), SessionCheck::Duplicate(&results::ok()));
        assert_eq!(sessions.check("c", 4, 1), SessionCheck::Stale { last_seq: 5 });
        assert_eq!(sessions.check("c", 6, 1), SessionCheck::New);
        assert_eq!(sessions.check("other", 1, 1), SessionCheck::New);
    }

    #[test]
    fn the_last_seq_with_another_request_is_reused_unless_the_digest_is_unknown() {
        let mut sessions = Sessions::new(1000);
        sessions.record("c", 5, Some(7), results::ok(), 0);
        assert_eq!(sessions.check("c", 5, 7), SessionCheck::Duplicate(&results::ok()));
        assert_eq!(sessions.check("c", 5, 8), SessionCheck::Reused);
        // A session restored from a snapshot written before digests: any request is a retry.
        sessions.record("old", 3, None, results::ok(), 0);
        assert_eq!(sessions.check("old", 3, 8), SessionCheck::Duplicate(&results::ok()));
        let restored = Sessions::from_proto(1000, sessions.to_proto()).expect("valid sessions");
        assert_eq!(restored.check("c", 5, 8), SessionCheck::Reused);
        assert_eq!(restored.check("old", 3, 8), SessionCheck::Duplicate(&results::ok()));
    }

    #[test]
    fn the_digest_ignores_the_timestamp_but_not_the_request() {
        use raftmq_proto::client::{ConsumeMessage, PutMessage};
        let put = |message: &str| {
            Some(command::Kind::PutMessage(PutMessage {
                topic: "t".into(),
                message: message.into(),
            }))
        };
        assert_eq!(request_digest(&put("a")), request_digest(&put("a")));
        assert_ne!(request_digest(&put("a")), request_digest(&put("b")));
        let consume = Some(command::Kind::ConsumeMessage(ConsumeMessage { topic: "t".into() }));
        assert_ne!(request_digest(&put("")), request_digest(&consume));
    }

    #[test]
    fn sessions_expire_only_after_being_idle_longer_than_the_ttl() {
        let mut sessions = Sessions::new(100);
        sessions.record("old", 1, Some(1), results::ok(), 1_000);
        sessions.record("new", 1, Some(1), results::ok(), 1_050);
        sessions.expire_idle(1_100); // "old" idle exactly the TTL: kept
        assert_eq!(sessions.len(), 2);
        sessions.expire_idle(1_101);
        assert_eq!(sessions.check("old", 1, 1), SessionCheck::New);
        assert_eq!(sessions.check("new", 1, 1), SessionCheck::Duplicate(&results::ok()));
        // Activity refreshes the session: its old activity entry must not expire it.
        sessions.record("new", 2, Some(1), results::ok(), 1_140);
        sessions.expire_idle(1_200);
        assert_eq!(sessions.len(), 1);
        sessions.expire_idle(1_241);
        assert_eq!(sessions.len(), 0);
    }

    #[test]
    fn a_huge_ttl_never_expires() {
        let mut sessions = Sessions::new(u64::MAX);
        sessions.record("c", 1, Some(1), results::ok(), 0);
        sessions.expire_idle(u64::MAX);
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn snapshot_form_round_trips_and_refuses_bad_sessions() {
        let mut sessions = Sessions::new(10);
        sessions.record("b", 2, Some(1), results::consumed("m".into()), 7);
        sessions.record("a", 1, Some(1), results::ok(), 3);
        let proto = sessions.to_proto();
        assert_eq!(proto[0].client_id, "a"); // ordered by id, not by insertion
        let restored = Sessions::from_proto(10, proto.clone()).map(|s| s.to_proto());
        assert_eq!(restored, Ok(proto.clone()));

        let mut twice = proto.clone();
        twice.push(proto[0].clone());
        assert!(Sessions::from_proto(10, twice).is_err());
        let mut no_result = proto.clone();
        no_result[0].last_result = None;
        assert!(Sessions::from_proto(10, no_result).is_err());
        let mut empty_id = proto;
        empty_id[0].client_id.clear();
        assert!(Sessions::from_proto(10, empty_id).is_err());
    }
}
