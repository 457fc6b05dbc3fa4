//! Group commit throughput: 100-byte entries, one real fsync per batch of 1,
//! 16 or 256 entries, in a temp dir. Kept short: `cargo bench -p
//! raftmq-storage` takes well under a minute.

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raftmq_raft::{Entry, Payload};
use raftmq_storage::{Identity, Storage, StorageOptions};

fn append_and_sync(c: &mut Criterion) {
    let data = Bytes::from(vec![0x5a; 100]);
    let mut group = c.benchmark_group("wal_append_sync");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for batch in [1u64, 16, 256] {
        let tmp = tempfile::tempdir().expect("temp dir");
        let identity = Identity { node_id: 1, cluster_id: "bench".into() };
        let opts = StorageOptions { sync: true, ..StorageOptions::default() };
        let (mut storage, _) = Storage::open(tmp.path(), &identity, opts).expect("open");
        let mut next = 1;
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::new("entries_per_sync", batch), &batch, |b, &batch| {
            b.iter(|| {
                let entries: Vec<Entry> = (next..next + batch)
                    .map(|index| Entry { index, term: 1, payload: Payload::Command(data.clone()) })
                    .collect();
                next += batch;
                storage.append(&entries).expect("append");
                storage.sync().expect("sync");
            });
        });
    }
    group.finish();
}

criterion_group!(benches, append_and_sync);
criterion_main!(benches);
