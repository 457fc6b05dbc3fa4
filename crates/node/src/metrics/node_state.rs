//! The gauges of a node's Raft state, read from the status the driver publishes after every
//! step: the scrape reads them, so recording costs the driver nothing.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use tokio::sync::watch;

use crate::node::NodeStatus;

#[derive(Debug)]
pub struct StatusCollector {
    status: watch::Receiver<NodeStatus>,
}

impl StatusCollector {
    pub fn new(status: watch::Receiver<NodeStatus>) -> Self {
        Self { status }
    }
}

/// Encodes one unlabelled gauge read at scrape time.
pub(super) fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value as i64);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.status.borrow().clone();
        let e = &mut encoder;
        let has_leader = s.leader_id.is_some() && !s.is_removed();
        gauge(e, "raftmq_server_has_leader", "1 when this node knows a leader", has_leader.into())?;
        gauge(
            e,
            "raftmq_server_is_leader",
            "1 when this node is the leader",
            s.is_leader().into(),
        )?;
        gauge(e, "raftmq_raft_term", "The current term", s.term)?;
        gauge(e, "raftmq_raft_commit_index", "The highest index known committed", s.commit_index)?;
        gauge(e, "raftmq_raft_applied_index", "The highest index applied", s.applied_index)?;
        gauge(e, "raftmq_raft_last_log_index", "The last index in this node's log", s.last_index)?;
        // The leader's view of its followers: present on the leader only, as in KRaft.
        let followers: Vec<_> = s.members.iter().filter(|m| m.node_id != s.node_id).collect();
        if !s.is_leader() || followers.is_empty() {
            return Ok(());
        }
        let mut metric = encoder.encode_descriptor(
            "raftmq_raft_follower_match_index",
            "On the leader: the highest index known replicated on each follower",
            None,
            MetricType::Gauge,
        )?;
        for m in &followers {
            let labels = [("follower", m.node_id.to_string())];
            metric.encode_family(&labels)?.encode_gauge(&(m.match_index as i64))?;
        }
        let mut metric = encoder.encode_descriptor(
            "raftmq_raft_follower_lag_entries",
            "On the leader: how many entries each follower is behind the leader's log",
            None,
            MetricType::Gauge,
        )?;
        for m in &followers {
            let labels = [("follower", m.node_id.to_string())];
            metric.encode_family(&labels)?.encode_gauge(&(m.lag as i64))?;
        }
        Ok(())
    }
}
