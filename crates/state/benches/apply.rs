//! The state machine's apply path: decoding and applying committed commands,
//! as the driver does for every entry, and a snapshot of a large state.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prost::Message as _;
use raftmq_proto::client::command::Kind;
use raftmq_proto::client::{Command, ConsumeMessage, PutMessage};
use raftmq_state::StateMachine;

fn encode(kind: Kind, client: &str, seq: u64) -> Vec<u8> {
    Command { client_id: client.into(), seq, timestamp_ms: 1, kind: Some(kind) }.encode_to_vec()
}

fn apply(c: &mut Criterion) {
    const N: u64 = 10_000;
    let value = "v".repeat(100);
    let puts: Vec<Vec<u8>> = (1..=N)
        .map(|i| {
            encode(
                Kind::PutMessage(PutMessage { topic: "t".into(), message: value.clone() }),
                "",
                i,
            )
        })
        .collect();
    let sessions: Vec<Vec<u8>> = (1..=N)
        .map(|i| {
            encode(
                Kind::PutMessage(PutMessage { topic: "t".into(), message: value.clone() }),
                "c",
                i,
            )
        })
        .collect();
    let consumes: Vec<Vec<u8>> = (1..=N)
        .map(|i| encode(Kind::ConsumeMessage(ConsumeMessage { topic: "t".into() }), "", i))
        .collect();
    let fresh = || {
        let mut sm = StateMachine::new(600_000);
        sm.apply_command(
            1,
            1,
            &encode(Kind::CreateTopic(raftmq_state::rest_topic("t".into())), "", 0),
        );
        sm
    };

    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(N));
    group.bench_function("put 100-byte messages", |b| {
        b.iter_batched(
            fresh,
            |mut sm| {
                for (i, cmd) in puts.iter().enumerate() {
                    sm.apply_command(i as u64 + 2, 1, cmd);
                }
                sm
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("put with a client session", |b| {
        b.iter_batched(
            fresh,
            |mut sm| {
                for (i, cmd) in sessions.iter().enumerate() {
                    sm.apply_command(i as u64 + 2, 1, cmd);
                }
                sm
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("consume", |b| {
        b.iter_batched(
            || {
                let mut sm = fresh();
                for (i, cmd) in puts.iter().enumerate() {
                    sm.apply_command(i as u64 + 2, 1, cmd);
                }
                sm
            },
            |mut sm| {
                for (i, cmd) in consumes.iter().enumerate() {
                    sm.apply_command(N + i as u64 + 2, 1, cmd);
                }
                sm
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    let mut big = fresh();
    for i in 0..100_000u64 {
        big.apply_command(i + 2, 1, &puts[(i % N) as usize]);
    }
    let mut group = c.benchmark_group("snapshot");
    group.throughput(Throughput::Elements(100_000));
    group.sample_size(10);
    // What the driver itself does to start a snapshot: clone the state (the
    // queued messages are shared, copy-on-write chunks). The encoding runs
    // on another thread.
    group.bench_function("clone 100k queued messages", |b| b.iter(|| big.clone()));
    group.bench_function("encode 100k queued messages", |b| b.iter(|| big.snapshot()));
    group.bench_function("stream 100k queued messages into a sink", |b| {
        b.iter(|| big.snapshot_to(&mut std::io::sink()).expect("a sink takes everything"))
    });
    let data = big.snapshot();
    group.bench_function("restore 100k queued messages", |b| {
        b.iter(|| StateMachine::restore(&data, 600_000).expect("a snapshot restores"))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = apply
}
criterion_main!(benches);
