//! The state machine with its partitions on disk answers, digests and snapshots as the one in
//! memory does (docs/storage.md, "Partition data").

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::{
    AppendRecords, Command, ConsumeMessage, CreateTopic, DeleteTopic, PutMessage, TopicConfig,
};

use super::partition_log::test_batch_with;
use super::segment_store::DiskConfig;
use super::{PartitionStorage, SnapshotForm, StateMachine, TransferForm};
use prost::Message as _;

const TTL: u64 = u64::MAX;
/// Small segments, so that the runs below roll often.
const SEGMENT_BYTES: u64 = 300;

#[derive(Clone, Debug)]
enum Step {
    Create {
        topic: usize,
        partitions: u32,
        retention_bytes: Option<i64>,
        consume_frees: bool,
    },
    /// A REST put of a message of `len` bytes, or a consume.
    Put {
        topic: usize,
        len: usize,
    },
    Consume {
        topic: usize,
    },
    Delete {
        topic: usize,
    },
    Append {
        topic: usize,
        partition: u32,
        records: i32,
        ts: i64,
    },
    /// Snapshot the disk machine (as the node does) and restart it from that snapshot.
    Restart,
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0usize..2, 1u32..3, proptest::option::of(0i64..400), any::<bool>())
            .prop_map(|(topic, partitions, retention_bytes, consume_frees)| Step::Create { topic, partitions, retention_bytes, consume_frees }),
        6 => (0usize..2, 0usize..200).prop_map(|(topic, len)| Step::Put { topic, len }),
        5 => (0usize..2).prop_map(|topic| Step::Consume { topic }),
        1 => (0usize..2).prop_map(|topic| Step::Delete { topic }),
        12 => (0usize..2, 0u32..2, 1i32..5, 0i64..1000)
            .prop_map(|(topic, partition, records, ts)| Step::Append { topic, partition, records, ts }),
        1 => Just(Step::Restart),
    ]
}

fn command(kind: Kind) -> Vec<u8> {
    Command { timestamp_ms: 1_000, kind: Some(kind), ..Default::default() }.encode_to_vec()
}

fn kind(step: &Step) -> Option<Kind> {
    // Names a REST door accepts that are no file names: a climb out of the directory, and
    // 254 bytes of non-ASCII (a partition directory's name must stay one short component).
    let name = |t: usize| if t == 0 { "a/../../b".to_string() } else { "é".repeat(127) };
    Some(match step {
        Step::Create { topic, partitions, retention_bytes, consume_frees } => {
            Kind::CreateTopic(CreateTopic {
                name: name(*topic),
                partitions: *partitions,
                config: retention_bytes
                    .map(|bytes| TopicConfig { retention_ms: -1, retention_bytes: bytes }),
                consume_frees: *consume_frees,
            })
        }
        Step::Put { topic, len } => Kind::PutMessage(PutMessage {
            topic: name(*topic),
            message: format!("{len}:{}", "m".repeat(*len)),
        }),
        Step::Consume { topic } => Kind::ConsumeMessage(ConsumeMessage { topic: name(*topic) }),
        Step::Delete { topic } => Kind::DeleteTopic(DeleteTopic { name: name(*topic) }),
        Step::Append { topic, partition, records, ts } => Kind::AppendRecords(AppendRecords {
            topic: name(*topic),
            partition: *partition,
            batches: test_batch_with(*records, None, *ts).into(),
        }),
        Step::Restart => return None,
    })
}

fn on_disk(dir: &Path) -> PartitionStorage {
    PartitionStorage::Disk(Arc::new(DiskConfig::new(dir.to_path_buf(), SEGMENT_BYTES)))
}

/// What the node does: fsync and link the segments, write the snapshot, release what it no
/// longer needs; then a restart restores from it. Answers the snapshot's bytes.
fn snapshot_and_restart(machine: &mut StateMachine, root: &Path, n: usize) -> Bytes {
    let links = root.join(format!("snap-{n}.segments"));
    let clone = machine.clone();
    clone.partition_logs().sync_and_link(&links).expect("sync and link");
    let data = Bytes::from(clone.snapshot());
    clone.partition_logs().release_below_start(clone.applied_index()).expect("release");
    *machine = StateMachine::restore_with(&data, TTL, on_disk(&root.join("partitions")))
        .expect("the restart finds its data");
    data
}

/// Every batch of every partition, as read.
fn all_batches(machine: &StateMachine) -> Vec<(String, u32, Vec<bytes::Bytes>)> {
    let mut out = Vec::new();
    for topic in machine.topics() {
        for (p, log) in
            machine.partition_logs().partitions(&topic).unwrap_or(&[]).iter().enumerate()
        {
            out.push((topic.clone(), p as u32, log.read(0, usize::MAX)));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The same log on disk and in memory: equal digests and answers at every step, across
    /// restarts from the disk machine's own snapshots; each such snapshot's transfer form is
    /// the memory machine's snapshot, byte for byte.
    #[test]
    fn disk_and_memory_give_the_same_digest_answers_and_transfer_form(
        steps in proptest::collection::vec(arb_step(), 1..60),
    ) {
        let root = tempfile::tempdir().expect("a temp dir");
        let mut memory = StateMachine::new(TTL);
        let mut disk = StateMachine::with_storage(TTL, on_disk(&root.path().join("partitions")));
        let mut index = 0;
        for (n, step) in steps.iter().enumerate() {
            match kind(step) {
                Some(kind) => {
                    index += 1;
                    let data = command(kind);
                    let a = memory.apply_command(index, 1, &data);
                    let b = disk.apply_command(index, 1, &data);
                    prop_assert_eq!(a, b);
                }
                None => {
                    let data = snapshot_and_restart(&mut disk, root.path(), n);
                    prop_assert_eq!(disk.snapshot_form(), SnapshotForm::Reference);
                    let links = root.path().join(format!("snap-{n}.segments"));
                    let form = TransferForm::open(&data, &links)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?
                        .expect("a reference-form snapshot");
                    let mut full = Vec::new();
                    let written =
                        form.write_to(&mut full).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let counted = form.encoded_len().map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!((written, counted), (full.len() as u64, full.len() as u64));
                    prop_assert!(full == memory.snapshot(), "the transfer form is the full form");
                    prop_assert!(TransferForm::open(&full.into(), &links).expect("opens").is_none());
                }
            }
            prop_assert_eq!(disk.digest(), memory.digest());
            prop_assert_eq!(all_batches(&disk), all_batches(&memory));
            prop_assert_eq!(disk.storage_failure(), None);
        }
        // Whatever the topic names, nothing was written beside `partitions/` but the links.
        for entry in std::fs::read_dir(root.path()).expect("the temp dir") {
            let name = entry.expect("an entry").file_name().to_string_lossy().into_owned();
            prop_assert!(name == "partitions" || name.starts_with("snap-"), "{} was made", name);
        }
    }
}

#[test]
fn a_full_form_snapshot_installs_on_disk_and_a_reference_form_needs_a_directory() {
    let root = tempfile::tempdir().expect("a temp dir");
    let mut memory = StateMachine::new(TTL);
    let steps = [
        Step::Create { topic: 0, partitions: 2, retention_bytes: None, consume_frees: true },
        Step::Put { topic: 0, len: 7 },
        Step::Put { topic: 0, len: 9 },
        Step::Consume { topic: 0 },
        Step::Append { topic: 0, partition: 1, records: 3, ts: 5 },
        Step::Append { topic: 0, partition: 1, records: 2, ts: 6 },
    ];
    for (i, step) in steps.iter().enumerate() {
        memory.apply_command(i as u64 + 1, 1, &command(kind(step).expect("a command")));
    }
    let dir = root.path().join("partitions");
    let installed = StateMachine::restore_with(&memory.snapshot().into(), TTL, on_disk(&dir))
        .expect("a full-form snapshot installs");
    assert_eq!(installed.digest(), memory.digest());
    assert_eq!(all_batches(&installed), all_batches(&memory));
    let reference = Bytes::from(installed.snapshot());
    let refused = StateMachine::restore(&reference, TTL).expect_err("no directory to read");
    assert!(refused.to_string().contains("segment files"), "{refused}");
    // The partition's directory gone: a clear error naming it.
    std::fs::remove_dir_all(dir.join("a%2F..%2F..%2Fb-1@1")).expect("remove");
    let missing = StateMachine::restore_with(&reference, TTL, on_disk(&dir)).expect_err("missing");
    assert!(missing.to_string().contains("a%2F..%2F..%2Fb-1@1"), "{missing}");
}
