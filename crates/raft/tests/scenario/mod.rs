//! Golden scenario scripts for the Raft core.
//!
//! Each file in `tests/scenarios/` is a script run against an in-memory
//! cluster (`cluster.rs`) that carries out the `Ready` contract of
//! `src/ready.rs` faithfully. Every command's output is compared with the
//! expected output written under it (format in `script.rs`); run
//! `UPDATE_GOLDEN=1 cargo test -p raftmq-raft --test scenarios` to rewrite the
//! expectations in place, then review the diff by hand: the expected output
//! is what a reader learns each rule from.
//!
//! # Commands
//!
//! Node ids are numbers; `[..]` is optional.
//!
//! | command | does |
//! |---|---|
//! | `cluster N [prevote=B checkquorum=B lease=B election=T heartbeat=T max_batch_bytes=N max_inflight_msgs=N max_inflight_bytes=N max_uncommitted_bytes=N]` | a new cluster of voters 1..=N, bootstrapped (entries 1..=N add them, term 1); defaults are `Config::new`'s; prints `status` |
//! | `add-node N` | a node with an empty disk (membership commands add it themselves) |
//! | `campaign N` | ticks node N alone until its election timer fires (pre-vote or election) |
//! | `tick [K] [N..]` | K rounds (default 1) of one tick to each listed node (default: all up) |
//! | `advance [K] [N..]` | K rounds of: tick, then `settle` — time passing with the network working |
//! | `propose N cmd..` | proposes the commands on N, all before one Ready |
//! | `read N ctx` | `read_index(ctx)` on N |
//! | `transfer N T` | N transfers leadership to T |
//! | `add-learner N M`, `add-voter N M` (= `promote`), `demote N M`, `remove N M` | N proposes the membership change (creating node M if new) |
//! | `deliver` | delivers queued messages until the network is quiet, printing each |
//! | `deliver SEL [K]` | delivers once (at most K of) the messages queued now that SEL picks: `3` (to 3), `1->3`, `1->*`, `*->3`, `*` |
//! | `settle` | like `deliver`, printing only what the nodes did |
//! | `drop SEL [Kind]` | removes queued messages (optionally of one kind, e.g. `Append`) |
//! | `partition A.. \| B.. [\| ..]` | cuts every link between the groups; unlisted nodes form one more group |
//! | `heal` | restores every link |
//! | `crash N` / `restart N` | N loses all volatile state and unpersisted writes / restarts from its disk |
//! | `stall N` / `persist N` / `unstall N` | N's writes wait for `persist` / make them durable now / back to instant disk |
//! | `snapshot N` | N snapshots its state machine at its applied index (`snapshot_taken`) |
//! | `status [N..]` | role, term, vote, leader, commit, applied, last log position, membership |
//! | `log [N..] [from=I]` | the log in memory: `index@term:payload` |
//! | `disk [N..]` | what is durable: hard state, snapshot, entries |
//! | `state [N..]` | the applied commands |
//! | `progress N` | the leader's view of each member |
//! | `messages [SEL]` | the queued messages |
//! | `events [N..]` | the core's events since the last `events` |
//!
//! # Output
//!
//! Lines `N: ...` are what node N did or was told (its `Event`s, `apply`
//! of committed entries, served reads, refused requests). Under `deliver`,
//! each delivered message is printed and what it caused is indented below it.
//! Messages read `from->to Kind term=T ...` (see `format.rs`).

mod cluster;
mod commands;
mod format;
mod script;

use std::fs;

/// Runs one script file; panics with a diff on the first mismatch.
pub fn run_file(path: &str) {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let blocks = script::parse(&lines);
    let mut runner = commands::Runner::default();
    let mut actual = Vec::new();
    let mut mismatches = Vec::new();
    for block in &blocks {
        let output = runner
            .run(&block.command)
            .unwrap_or_else(|e| panic!("{path}:{}: `{}`: {e}", block.line + 1, block.command));
        assert!(
            output.iter().all(|l| !l.trim().is_empty()),
            "{path}:{}: output has a blank line",
            block.line + 1
        );
        let expected = block.expected.map(|(start, end)| lines[start..end].to_vec());
        if expected.as_ref() != Some(&output) {
            mismatches.push((block, expected.unwrap_or_default(), output.clone()));
        }
        actual.push(output);
    }
    if mismatches.is_empty() {
        return;
    }
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| !v.is_empty() && v != "0") {
        fs::write(path, script::rewrite(&lines, &blocks, &actual))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        return;
    }
    let (block, expected, output) = &mismatches[0];
    let mut report = format!(
        "{path}:{}: `{}`: output differs (- expected, + actual):\n{}",
        block.line + 1,
        block.command,
        script::diff(expected, output)
    );
    if mismatches.len() > 1 {
        let rest: Vec<String> =
            mismatches[1..].iter().map(|(b, _, _)| (b.line + 1).to_string()).collect();
        report += &format!("later mismatches (often consequences) at lines {}\n", rest.join(", "));
    }
    report += "run with UPDATE_GOLDEN=1 to accept the new output, then review the diff\n";
    panic!("{report}");
}
