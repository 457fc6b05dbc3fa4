//! InitProducerId: gives an idempotent producer its producer id, from the quorum's producer
//! id counter — the one `/v1/producers` hands out from (the metadata `AllocateProducerId`
//! command), so ids are unique across the cluster and never reused — with epoch 0.
//!
//! - Any member answers, as any Kafka broker does for a producer without a transactional id:
//!   it proposes the command as its own broker, at its broker epoch, through the command
//!   layer, which carries it to the leader. (Answering NOT_COORDINATOR on followers would
//!   strand librdkafka, which asks the one broker it is connected to again and again.)
//! - A member's broker registration is written shortly after it starts; until it is there,
//!   or while there is no leader, the answer is COORDINATOR_NOT_AVAILABLE, which clients
//!   retry.
//! - A transactional id asks for transactions, which are not served: TRANSACTIONAL_ID_
//!   AUTHORIZATION_FAILED would blame permissions, so the answer is INVALID_REQUEST, a fatal
//!   error for the client that says plainly the request cannot be served.
//! - A producer that gives its current id and epoch (version 3 on, to bump its epoch after an
//!   error) gets a new producer id at epoch 0, which clients accept as a fresh start: its old
//!   id is then simply never used again.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::{metadata_result, AllocateProducerId, Command};

use crate::node::NodeHandle;

pub async fn answer(node: &NodeHandle, request: InitProducerIdRequest) -> InitProducerIdResponse {
    match allocate(node, &request).await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err((error, why)) => {
            tracing::debug!(node = node.id(), "InitProducerId refused: {why}");
            InitProducerIdResponse::default()
                .with_error_code(error.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}

async fn allocate(
    node: &NodeHandle,
    request: &InitProducerIdRequest,
) -> Result<i64, (ResponseError, String)> {
    if request.transactional_id.is_some() {
        let why = "transactions are not supported (docs/kafka.md)".to_string();
        return Err((ResponseError::InvalidRequest, why));
    }
    let broker_id = node.id() as i64;
    let epoch = node.state().metadata().broker(broker_id).map(|b| b.epoch);
    let Some(broker_epoch) = epoch else {
        let why = format!("broker {broker_id} is not registered yet");
        return Err((ResponseError::CoordinatorNotAvailable, why));
    };
    let kind = Kind::AllocateProducerId(AllocateProducerId { broker_id, broker_epoch });
    let applied = node
        .propose(Command { kind: Some(kind), ..Command::default() })
        .await
        .map_err(|e| (ResponseError::CoordinatorNotAvailable, e.to_string()))?;
    match &applied.result.outcome {
        Some(raftmq_proto::client::command_result::Outcome::Metadata(result)) => {
            match &result.record {
                Some(metadata_result::Record::Producer(p)) => {
                    i64::try_from(p.producer_id).map_err(|_| {
                        (ResponseError::UnknownServerError, "producer ids ran out".to_string())
                    })
                }
                other => Err((ResponseError::UnknownServerError, format!("{other:?}"))),
            }
        }
        // A broker registration that changed under us (closed, a new epoch): retried.
        other => Err((ResponseError::CoordinatorNotAvailable, format!("{other:?}"))),
    }
}
