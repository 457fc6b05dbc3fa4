//! Golden scenario tests: one script per file in `tests/scenarios/`, run by
//! the interpreter in `tests/scenario/`. Each script shows one part of Raft at
//! work, step by step, with the output a reader can check the rule against.
//!
//! `UPDATE_GOLDEN=1 cargo test -p raftmq-raft --test scenarios` rewrites the
//! expected outputs in place.

mod scenario;

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                scenario::run_file(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/scenarios/",
                    stringify!($name),
                    ".txt"
                ));
            }
        )*

        /// Every script in the directory has a test above.
        #[test]
        fn every_script_is_run() {
            let listed = [$(concat!(stringify!($name), ".txt")),*];
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios");
            for entry in std::fs::read_dir(dir).expect("scenario directory") {
                let name = entry.expect("directory entry").file_name();
                let name = name.to_string_lossy();
                if name.ends_with(".txt") {
                    assert!(listed.contains(&name.as_ref()), "{name} is not listed in scenarios.rs");
                }
            }
        }
    };
}

scenarios!(
    election,
    split_vote,
    prevote,
    checkquorum,
    figure8,
    log_repair,
    snapshot_catchup,
    learner_promotion,
    remove_leader,
    leadership_transfer,
    read_index,
    persistence,
);
