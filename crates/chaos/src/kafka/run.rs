//! One Kafka chaos run, start to verdict: a cluster with Kafka listeners, the topic, the
//! producers and the group for the duration under the nemesis, heal, let unanswered batches
//! resolve, kill -9 and restart the whole cluster, read every partition back, let the group
//! catch up, check.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::checker;
use super::conn::Brokers;
use super::consumer::Member;
use super::history::{self, Event, Recorder};
use super::producer::Producer;
use super::Shared;
use crate::cluster::Cluster;
use crate::history::Clock;
use crate::rng::Rng;
use crate::runner::{self, Options, RunReport};

/// The topic and the group every run uses (each run has a fresh cluster).
pub const TOPIC: &str = "chaos";
pub const GROUP: &str = "chaos-group";
/// Members of the consumer group.
pub const MEMBERS: usize = 2;

pub fn run(options: &Options, partitions: i32) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("cannot create {}", options.out.display()))?;
    let steps = match &options.schedule {
        Some(steps) => steps.clone(),
        None => {
            crate::nemesis::schedule(options.seed, options.nodes, options.duration, options.kinds)
        }
    };
    runner::write_json(&options.out.join("schedule.json"), &steps)?;

    let data = options.out.join("data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    let unsynced = options.kinds.power_loss.then_some(options.seed);
    let mut cluster = Cluster::start(
        &options.exe,
        options.nodes,
        &data,
        options.node_args.clone(),
        unsynced,
        true,
    )?;
    let brokers = Brokers { addrs: cluster.kafka_addrs() };
    brokers.create_topic(TOPIC, partitions, Instant::now() + Duration::from_secs(30))?;

    let clock = Clock::start();
    let recorder = Recorder::new(clock);
    let shared = Arc::new(Shared::new(partitions));
    let producers: Vec<JoinHandle<()>> = (0..options.clients)
        .map(|client| {
            let producer = Producer {
                client,
                brokers: brokers.clone(),
                topic: TOPIC.to_string(),
                partitions,
                recorder: recorder.clone(),
                shared: shared.clone(),
                rng: Rng::derive(options.seed, 2000 + client as u64),
            };
            std::thread::spawn(move || producer.run())
        })
        .collect();
    let members: Vec<JoinHandle<()>> = (0..MEMBERS)
        .map(|index| {
            let member = Member {
                index,
                brokers: brokers.clone(),
                topic: TOPIC.to_string(),
                group: GROUP.to_string(),
                partitions,
                recorder: recorder.clone(),
                shared: shared.clone(),
            };
            std::thread::spawn(move || member.run())
        })
        .collect();

    let (log, mut findings) = runner::run_nemesis(options, &steps, &mut cluster, clock)?;
    runner::write_json(&options.out.join("nemesis.json"), &log)?;

    // Let unanswered batches resolve against the healed cluster, then stop the producers.
    shared.stop_producing.store(true, Ordering::Relaxed);
    set_give_up(&shared, Duration::from_secs(60));
    for producer in producers {
        let _ = producer.join();
    }

    findings.extend(runner::restart_everything(options, &mut cluster, clock)?);
    let read = Instant::now();
    let logs = super::fetch::read_log(&brokers, TOPIC, partitions, read + Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!(e))
        .context("cannot read the partitions back after the final restart")?;
    let read_ns = clock.now_ns();
    for (partition, records) in logs.iter().enumerate() {
        for (offset, value) in records {
            recorder.record(
                read_ns,
                Event::Logged {
                    partition: partition as i32,
                    offset: *offset,
                    value: value.clone(),
                },
            );
        }
    }
    // The group reads on until it delivered every partition's log, or three minutes pass.
    let ends = logs.iter().map(|records| records.last().map_or(0, |(offset, _)| offset + 1));
    *shared.targets.lock().expect("target lock is never poisoned") = Some(ends.collect());
    let deadline = Instant::now() + Duration::from_secs(180);
    while !members.iter().all(JoinHandle::is_finished) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    shared.stop_consuming.store(true, Ordering::Relaxed);
    for member in members {
        let _ = member.join();
    }

    let events = recorder.history();
    history::save(&options.out.join("kafka-history.json"), &events)?;
    let check = checker::check(&events);
    let report = runner::report(options, started.elapsed(), &log, findings, None, Some(check));
    runner::write_json(&options.out.join("report.json"), &report)?;
    drop(cluster);
    if report.valid() && !options.keep_data {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(report)
}

fn set_give_up(shared: &Shared, after: Duration) {
    *shared.give_up_at.lock().expect("give-up lock is never poisoned") =
        Some(Instant::now() + after);
}
