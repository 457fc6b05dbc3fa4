//! A three-node cluster elects a leader and commits a proposal, with messages
//! delivered directly and writes treated as durable at once.

use bytes::Bytes;
use raftmq_raft::{Config, Message, Payload, Raft, Role};

fn drive(nodes: &mut [Raft], applied: &mut [Vec<Bytes>]) {
    for _ in 0..100 {
        let mut inbox: Vec<Message> = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            let ready = node.ready();
            inbox.extend(ready.messages);
            if let Some(last) = ready.entries.last() {
                node.persisted(last.index, last.term);
            }
            inbox.extend(ready.persisted_messages);
            for entry in ready.committed {
                if let Payload::Command(data) = entry.payload {
                    applied[i].push(data);
                }
                node.applied(entry.index);
            }
        }
        if inbox.is_empty() {
            return;
        }
        for msg in inbox {
            let to = msg.to as usize - 1;
            nodes[to].step(msg);
        }
    }
}

#[test]
fn three_nodes_elect_a_leader_and_commit() {
    let members: Vec<(u64, Bytes)> = (1..=3).map(|i| (i, Bytes::new())).collect();
    let mut nodes: Vec<Raft> =
        (1..=3).map(|i| Raft::bootstrap(Config::new(i), &members).unwrap()).collect();
    let mut applied = vec![Vec::new(); 3];
    drive(&mut nodes, &mut applied);
    for _ in 0..30 {
        for node in nodes.iter_mut() {
            node.tick();
        }
        drive(&mut nodes, &mut applied);
    }
    let leaders: Vec<usize> = (0..3).filter(|i| nodes[*i].role() == Role::Leader).collect();
    assert_eq!(leaders.len(), 1, "exactly one leader");
    let leader = leaders[0];
    nodes[leader].propose(Bytes::from_static(b"x")).unwrap();
    drive(&mut nodes, &mut applied);
    for node in nodes.iter_mut() {
        node.tick();
    }
    drive(&mut nodes, &mut applied);
    for a in &applied {
        assert_eq!(a, &vec![Bytes::from_static(b"x")]);
    }
}
