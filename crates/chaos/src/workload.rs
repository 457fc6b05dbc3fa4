//! The clients: several threads, each sending one operation at a time to a random node, with
//! unique values, recording every operation in the history.
//!
//! Writes (create, put, consume) carry `x-client-id` and `x-client-seq`. When an attempt's
//! outcome is unknown (504, timeout, broken connection), the client retries the same
//! sequence number — on any node, for as long as the run lets it — until an answer says what
//! happened: the session makes the retry exactly-once, so the retries never add effects and
//! the operation ends with a definite outcome far more often than a plain client's would.
//! A consume that timed out is thus never a message lost to nobody.
//!
//! A few "plain" clients send no session, as RRMQ clients do: they cannot retry, so their
//! unknown outcomes stay unknown and the checker must allow both. They put, create and read
//! only — a plain consume with an unknown outcome may lose a message to nobody, which is that
//! client's risk, not the queue's fault.
//!
//! Topics rotate: after a number of puts a client creates the next topic, and the workload
//! keeps a few topics active. Small topics keep each object's linearizability search small.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::history::{Answer, BrokerEntry, Call, Op, Outcome, Recorder};
use super::rng::Rng;

#[derive(Clone, Debug)]
pub struct Settings {
    pub clients: usize,
    pub seed: u64,
    /// Puts after which a new topic is created.
    pub puts_per_topic: u64,
    /// Topics receiving puts and consumes at any time.
    pub active_topics: usize,
    /// One HTTP attempt's timeout: past it the outcome is unknown.
    pub attempt_timeout: Duration,
    /// Also register, change and read brokers (the `/v1/brokers` routes).
    pub brokers: bool,
    /// How many of the clients (the last ones) send no session. Workers numbered from
    /// `clients` on (the drain) always do.
    pub plain_clients: usize,
}

/// Broker ids the workload uses: few, so that clients contend for them.
const BROKERS: u64 = 6;

/// What the clients share: the topics, and when to stop.
#[derive(Default)]
pub struct Shared {
    topics: Mutex<Topics>,
    /// Stop starting operations.
    pub stop: AtomicBool,
    /// Stop retrying unknown operations after this.
    pub give_up_at: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Topics {
    active: Vec<String>,
    all: Vec<String>,
    puts: u64,
}

impl Shared {
    /// Every topic name the workload has used.
    pub fn all_topics(&self) -> Vec<String> {
        self.topics.lock().expect("topic lock is never poisoned").all.clone()
    }

    fn gave_up(&self) -> bool {
        let at = *self.give_up_at.lock().expect("give-up lock is never poisoned");
        at.is_some_and(|at| Instant::now() >= at)
    }
}

/// What one HTTP attempt said.
enum Attempt {
    Answer(Answer),
    Failed(String),
    Unknown(String),
}

pub struct Worker {
    pub index: usize,
    /// Sends `x-client-id`/`x-client-seq` and retries unknown outcomes.
    sessions: bool,
    id: String,
    seq: u64,
    rng: Rng,
    http: Client,
    nodes: Vec<(u64, SocketAddr)>,
    recorder: Recorder,
    shared: Arc<Shared>,
    next_value: u64,
}

impl Worker {
    pub fn new(
        index: usize,
        settings: &Settings,
        nodes: Vec<(u64, SocketAddr)>,
        recorder: Recorder,
        shared: Arc<Shared>,
    ) -> anyhow::Result<Self> {
        let http = Client::builder()
            .timeout(settings.attempt_timeout)
            .connect_timeout(Duration::from_secs(1))
            .build()?;
        Ok(Self {
            index,
            sessions: index < settings.clients.saturating_sub(settings.plain_clients)
                || index >= settings.clients,
            id: format!("chaos-{}-{index}", settings.seed),
            seq: 0,
            rng: Rng::derive(settings.seed, 1000 + index as u64),
            http,
            nodes,
            recorder,
            shared,
            next_value: 0,
        })
    }

    /// Consumes every topic in `topics` until it is empty (or the give-up time passes);
    /// every consume is recorded like any other operation.
    pub fn drain(&mut self, topics: &[String]) {
        for topic in topics {
            while !self.shared.gave_up() {
                let op = self.perform(Call::Consume { topic: topic.clone() });
                match op.answer() {
                    Some(Answer::Message { .. }) => {}
                    Some(_) => break,
                    None => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        }
    }

    /// Sends a read until an answer comes (or the give-up time passes).
    pub fn read(&mut self, call: Call) -> Option<Answer> {
        while !self.shared.gave_up() {
            if let Some(answer) = self.perform(call.clone()).answer() {
                return Some(answer.clone());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }

    /// Sends operations until told to stop.
    pub fn run(mut self, settings: &Settings) {
        while !self.shared.stop.load(Ordering::Relaxed) {
            let call = match self.choose(settings) {
                // A plain client only adds: see the module doc.
                Call::Consume { topic } if !self.sessions => {
                    self.next_value += 1;
                    Call::Put { topic, value: format!("{}-{}", self.index, self.next_value) }
                }
                Call::RegisterBroker { broker, .. } | Call::ChangeBroker { broker, .. }
                    if !self.sessions =>
                {
                    Call::GetBroker { broker }
                }
                call => call,
            };
            self.perform(call);
        }
    }

    fn choose(&mut self, settings: &Settings) -> Call {
        let roll = self.rng.below(100);
        let mut topics = self.shared.topics.lock().expect("topic lock is never poisoned");
        let due = topics.puts >= topics.all.len() as u64 * settings.puts_per_topic;
        if topics.active.is_empty() || (due && roll < 50) {
            let topic = format!("t{}", topics.all.len());
            topics.all.push(topic.clone());
            topics.active.push(topic.clone());
            if topics.active.len() > settings.active_topics {
                topics.active.remove(0);
            }
            return Call::CreateTopic { topic };
        }
        let topic = self.rng.pick(&topics.active).clone();
        drop(topics);
        self.next_value += 1;
        let unique = format!("{}-{}", self.index, self.next_value);
        let broker = self.rng.between(1, BROKERS) as i64;
        match roll {
            0..=2 => Call::ListTopics,
            3..=4 => Call::CreateTopic { topic }, // exists by now, most likely
            5..=46 => {
                self.shared.topics.lock().expect("topic lock is never poisoned").puts += 1;
                Call::Put { topic, value: unique }
            }
            47..=88 => Call::Consume { topic },
            _ if !settings.brokers => Call::Consume { topic },
            89..=91 => Call::RegisterBroker { broker, host: format!("h{unique}") },
            92..=95 => Call::ChangeBroker { broker, host: format!("h{unique}") },
            96..=98 => Call::GetBroker { broker },
            _ => Call::ListBrokers,
        }
    }

    /// Runs one logical operation to a definite outcome if it can, and records it.
    pub fn perform(&mut self, call: Call) -> Op {
        let session = self.sessions && !call.is_read();
        if session {
            self.seq += 1;
        }
        let call_ns = self.recorder.clock.now_ns();
        let mut nodes = Vec::new();
        let mut maybe_applied = false;
        let outcome = loop {
            let (node, addr) = *self.rng.pick(&self.nodes);
            nodes.push(node);
            match self.attempt(addr, &call, session) {
                Attempt::Answer(answer) => break Outcome::Ok { answer },
                Attempt::Failed(reason) if !maybe_applied => break Outcome::Failed { reason },
                Attempt::Failed(reason) | Attempt::Unknown(reason) => {
                    maybe_applied = true;
                    if !session || self.shared.gave_up() {
                        break Outcome::Unknown { reason };
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(self.rng.between(50, 250)));
        };
        let op = Op {
            id: 0,
            client: self.index,
            call,
            outcome,
            call_ns,
            return_ns: self.recorder.clock.now_ns(),
            attempts: nodes.len() as u32,
            nodes,
        };
        self.recorder.record(op.clone());
        op
    }

    fn attempt(&self, addr: SocketAddr, call: &Call, session: bool) -> Attempt {
        let base = format!("http://{addr}");
        let request = match call {
            Call::CreateTopic { topic } => {
                self.http.put(format!("{base}/topic")).json(&json!({"topic": topic}))
            }
            Call::ListTopics => self.http.get(format!("{base}/topic")),
            Call::Put { topic, value } => self
                .http
                .put(format!("{base}/message"))
                .json(&json!({"topic": topic, "message": value})),
            Call::Consume { topic } => self.http.get(format!("{base}/message/{topic}")),
            Call::RegisterBroker { broker, host } => self
                .http
                .post(format!("{base}/v1/brokers"))
                .json(&json!({"brokerId": broker, "brokerHost": host, "brokerPort": "9092"})),
            Call::ChangeBroker { broker, host } => self
                .http
                .patch(format!("{base}/v1/brokers/{broker}"))
                .json(&json!({"brokerHost": host})),
            Call::GetBroker { broker } => self.http.get(format!("{base}/v1/brokers/{broker}")),
            Call::ListBrokers => self.http.get(format!("{base}/v1/brokers")),
        };
        let request = if session {
            request.header("x-client-id", &self.id).header("x-client-seq", self.seq.to_string())
        } else {
            request
        };
        match request.send() {
            Ok(response) => interpret(call, response),
            // Never sent: nothing can have been applied.
            Err(e) if e.is_connect() => Attempt::Failed(format!("connect: {e}")),
            Err(e) if e.is_timeout() => Attempt::Unknown(format!("timeout: {e}")),
            Err(e) => Attempt::Unknown(format!("connection: {e}")),
        }
    }
}

/// The host and epoch of a broker record.
fn record(body: &Value) -> Option<(String, u64)> {
    Some((body["brokerHost"].as_str()?.to_string(), body["epoch"].as_u64()?))
}

/// Maps an HTTP answer to an outcome, per the node's error contract.
fn interpret(call: &Call, response: Response) -> Attempt {
    let status = response.status();
    let reason = response
        .headers()
        .get("x-raftmq-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = match response.json() {
        Ok(body) => body,
        Err(e) if status.is_success() => {
            return Attempt::Unknown(format!("{status}, unreadable body: {e}"))
        }
        Err(_) => Value::Null,
    };
    let answer = match (call, status) {
        (Call::CreateTopic { .. }, StatusCode::CREATED) => Answer::Created,
        (Call::CreateTopic { .. }, StatusCode::CONFLICT) => Answer::Exists,
        (Call::ListTopics, StatusCode::OK) => {
            let topics = body["topics"]
                .as_array()
                .map(|list| list.iter().filter_map(|t| t.as_str().map(str::to_string)).collect());
            match topics {
                Some(topics) => Answer::Topics { topics },
                None => return Attempt::Unknown(format!("200 without a topic list: {body}")),
            }
        }
        (Call::Put { .. }, StatusCode::CREATED) => Answer::Put,
        (Call::Consume { .. }, StatusCode::OK) => match body["message"].as_str() {
            Some(value) => Answer::Message { value: value.to_string() },
            None => return Attempt::Unknown(format!("200 without a message: {body}")),
        },
        (Call::RegisterBroker { .. }, StatusCode::CREATED) => match record(&body) {
            Some((host, epoch)) => Answer::Registered { host, epoch },
            None => return Attempt::Unknown(format!("201 without a broker record: {body}")),
        },
        (Call::RegisterBroker { .. }, StatusCode::OK) => match record(&body) {
            Some((host, epoch)) => Answer::AlreadyRegistered { host, epoch },
            None => return Attempt::Unknown(format!("200 without a broker record: {body}")),
        },
        (Call::ChangeBroker { .. } | Call::GetBroker { .. }, StatusCode::OK) => match record(&body)
        {
            Some((host, epoch)) => Answer::Broker { host, epoch },
            None => return Attempt::Unknown(format!("200 without a broker record: {body}")),
        },
        (Call::ChangeBroker { .. } | Call::GetBroker { .. }, StatusCode::NOT_FOUND)
            if reason.starts_with("no broker") =>
        {
            Answer::NoBroker
        }
        (Call::ListBrokers, StatusCode::OK) => {
            let entries = body["brokers"].as_array().map(|list| {
                list.iter()
                    .map(|b| {
                        let (host, epoch) = record(b)?;
                        Some(BrokerEntry { id: b["brokerId"].as_i64()?, host, epoch })
                    })
                    .collect::<Option<Vec<_>>>()
            });
            match entries.flatten() {
                Some(brokers) => Answer::Brokers { brokers },
                None => return Attempt::Unknown(format!("200 without a broker list: {body}")),
            }
        }
        // The state machine's words tell an empty queue from a missing topic.
        (Call::Consume { .. }, StatusCode::NOT_FOUND) if reason.contains("has no message") => {
            Answer::Empty
        }
        (Call::Put { .. } | Call::Consume { .. }, StatusCode::NOT_FOUND)
            if reason.starts_with("no topic") =>
        {
            Answer::NoTopic
        }
        (_, StatusCode::SERVICE_UNAVAILABLE) => {
            return Attempt::Failed(format!("503: {reason}"));
        }
        (_, s)
            if s.is_client_error() && s != StatusCode::NOT_FOUND && s != StatusCode::CONFLICT =>
        {
            return Attempt::Failed(format!("{s}: {reason}"));
        }
        (_, s) => return Attempt::Unknown(format!("{s}: {reason}")),
    };
    Attempt::Answer(answer)
}
