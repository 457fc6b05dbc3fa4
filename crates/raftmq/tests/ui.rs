//! The live page (`/ui`, docs/observability.md) in a real browser: crates/raftmq/tests/ui.py
//! drives Debian's chromium through playwright. Open `/ui` on a follower of a 3-node cluster,
//! kill -9 the leader, and the page names the new leader and shows the old one down within
//! 3 s. Skips, saying why, where python3, playwright or /usr/bin/chromium is missing
//! (`pip install playwright` and `apt-get install chromium` provide them).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{serial, Cluster};

fn browser_missing() -> Option<String> {
    if !std::path::Path::new("/usr/bin/chromium").exists() {
        return Some("/usr/bin/chromium is missing (apt-get install chromium)".into());
    }
    let probe = Command::new("python3").args(["-c", "import playwright.sync_api"]).output();
    match probe {
        Err(e) => Some(format!("cannot run python3: {e}")),
        Ok(out) if !out.status.success() => {
            Some("python3 has no playwright (pip install playwright)".into())
        }
        Ok(_) => None,
    }
}

#[test]
fn the_page_on_a_follower_shows_the_new_leader_within_3_s_of_a_leader_kill() {
    if let Some(why) = browser_missing() {
        eprintln!("SKIPPED the browser test: {why}");
        return;
    }
    let _serial = serial();
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let follower = (1..=3).find(|id| *id != leader).expect("three nodes");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui.py");
    let mut browser = Command::new("python3")
        .arg(script)
        .arg(cluster.url(follower, "/ui"))
        .args(
            std::env::var("RAFTMQ_UI_SCREENSHOT")
                .map(|p| vec!["--screenshot".into(), p])
                .unwrap_or_default(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the browser script");
    let mut lines = BufReader::new(browser.stdout.take().expect("piped")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(first, format!("LEADER {leader}"), "the page names the leader first");
    cluster.kill(leader);
    writeln!(browser.stdin.as_mut().expect("piped"), "KILLED").expect("tell the script");
    let said: Vec<String> = lines.map_while(Result::ok).collect();
    let status = browser.wait().expect("the script ends");
    assert!(status.success(), "the page did not follow the election: {said:?}");
    let new_leader = cluster.wait_leader();
    assert!(said.iter().any(|l| l.starts_with(&format!("NEW-LEADER {new_leader} "))), "{said:?}");
    // The page asked nothing of any host but the node that served it.
    let served = format!("127.0.0.1:{}", cluster.node(follower).client_port);
    let hosts = said.iter().find_map(|l| l.strip_prefix("HOSTS ")).unwrap_or_default();
    assert_eq!(hosts, served, "{said:?}");
}
