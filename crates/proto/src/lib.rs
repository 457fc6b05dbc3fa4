//! Protobuf definitions of raftmq and the prost/tonic code generated from them.
//!
//! The `.proto` files in `proto/` are the public, language-neutral contract:
//!
//! - [`raft`] (`raftmq.raft.v1`, `proto/raft.proto`): the internal node-to-node `Raft` service —
//!   one long-lived message stream per ordered peer pair, chunked snapshot installation,
//!   ReadIndex, command forwarding and joining — and the log entry encoding.
//! - [`client`] (`raftmq.v1`, `proto/raftmq.proto`): the public `Client` service (submit an
//!   operation, stream the committed log, status), the `Command` every log command entry
//!   encodes, `CommandResult`, `MemberInfo` and the state machine's `StateSnapshot`.
//!
//! Both modules hold the messages plus, with the `grpc` feature (on by default), a `*_client`
//! module (tonic client) and a `*_server` module (tonic server trait and service) per service. Conversions between these types and
//! the consensus core's own types live in the `raftmq` crate (`raftmq::codec`), which keeps
//! this crate free of any dependency on the core.

/// The generated code, nested like the protobuf packages so that the cross-package references
/// prost emits (`super::raft::v1::…`) resolve.
mod generated {
    pub mod raftmq {
        pub mod raft {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/raftmq.raft.v1.rs"));
            }
        }
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/raftmq.v1.rs"));
        }
    }
}

/// `raftmq.raft.v1`: the internal Raft service and the log entry encoding.
pub use generated::raftmq::raft::v1 as raft;

/// `raftmq.v1`: the public Client service, commands, results and the state snapshot.
pub use generated::raftmq::v1 as client;

/// The encoded `FileDescriptorSet` of both packages, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/raftmq_descriptor.bin"));

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::{client, raft, FILE_DESCRIPTOR_SET};

    #[test]
    fn a_command_round_trips_through_its_encoding() {
        let command = client::Command {
            client_id: "c1".into(),
            seq: 7,
            timestamp_ms: 1_700_000_000_000,
            kind: Some(client::command::Kind::PutMessage(client::PutMessage {
                topic: "orders".into(),
                message: "hello".into(),
            })),
        };
        let decoded = client::Command::decode(command.encode_to_vec().as_slice());
        assert_eq!(decoded, Ok(command));
    }

    #[test]
    fn an_entry_carries_an_encoded_command_as_bytes() {
        let command = client::Command {
            kind: Some(client::command::Kind::Operation(client::Operation {
                operation: "operation-1".into(),
            })),
            ..Default::default()
        };
        let entry = raft::Entry {
            index: 1,
            term: 1,
            payload: Some(raft::entry::Payload::Command(command.encode_to_vec().into())),
        };
        let Some(raft::entry::Payload::Command(bytes)) = entry.payload else {
            panic!("the entry was built with a command payload");
        };
        assert_eq!(client::Command::decode(bytes), Ok(command));
    }

    #[test]
    fn the_descriptor_set_describes_both_packages() {
        let contains =
            |needle: &[u8]| FILE_DESCRIPTOR_SET.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"raftmq.raft.v1"));
        assert!(contains(b"raftmq.v1"));
    }
}
