//! The script file format (etcd's datadriven, toydb's goldenscript):
//!
//! ```text
//! # A comment explains the next step.
//! propose 1 x
//! ----
//! 1: proposed x at 5
//!
//! ```
//!
//! A command line, a `----` line, the expected output, and a blank line (or
//! the end of the file). Lines starting with `#` and blank lines between
//! blocks are kept as they are. Output never has blank lines. A command
//! without `----` has no expectation yet; `UPDATE_GOLDEN=1` fills it in.

use std::fmt::Write as _;

pub struct Block {
    /// 0-based line of the command.
    pub line: usize,
    pub command: String,
    /// 0-based lines `[start, end)` of the expected output, if any.
    pub expected: Option<(usize, usize)>,
}

pub fn parse(lines: &[String]) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            i += 1;
            continue;
        }
        if lines.get(i + 1).is_some_and(|l| l.trim_end() == "----") {
            let start = i + 2;
            let mut end = start;
            while end < lines.len() && !lines[end].trim().is_empty() {
                end += 1;
            }
            blocks.push(Block { line: i, command: line.to_string(), expected: Some((start, end)) });
            i = end;
        } else {
            blocks.push(Block { line: i, command: line.to_string(), expected: None });
            i += 1;
        }
    }
    blocks
}

/// The file with every block's expected output replaced by `actual`.
pub fn rewrite(lines: &[String], blocks: &[Block], actual: &[Vec<String>]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut cursor = 0;
    for (block, actual) in blocks.iter().zip(actual) {
        out.extend(lines[cursor..=block.line].iter().cloned());
        out.push("----".into());
        out.extend(actual.iter().cloned());
        cursor = match block.expected {
            Some((_, end)) => end,
            None => {
                // Keep a blank line between this block and what follows.
                let next = block.line + 1;
                if lines.get(next).is_some_and(|l| !l.trim().is_empty()) {
                    out.push(String::new());
                }
                next
            }
        };
    }
    out.extend(lines[cursor..].iter().cloned());
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// A line diff of expected against actual (`-` expected, `+` actual).
pub fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    // lcs[i][j]: the longest common subsequence of expected[i..], actual[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            let _ = writeln!(out, "  {}", expected[i]);
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "- {}", expected[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+ {}", actual[j]);
            j += 1;
        }
    }
    out
}
