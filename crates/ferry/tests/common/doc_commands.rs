//! The command lines the documentation shows, checked against a binary's clap command tree.
//!
//! Both binaries (`ferry` and `ferry-agent`) include this file in their unit tests (where their
//! `Cli` type is visible) and in their CLI tests: a command the README documents that no longer
//! parses, a subcommand flag that clashes with a global one, or a subcommand whose `--help`
//! does not render fails a test instead of a user.
//!
//! Two kinds of documented invocations are found in Markdown:
//! - lines of `sh` code blocks (continuation lines joined, `$(…)` and `|`, `&&`, `||`, `;`, `>`
//!   ending a command, heredoc bodies skipped): they are examples to copy, so they must parse
//!   completely, with `$VAR` replaced by a sample value;
//! - code spans such as `` `ferry-agent rollback PRODUCT [--config-bundle] [--json]` `` in prose
//!   and tables: placeholders in capitals take sample values, `[…]` parts are tried both left
//!   out and given, `a|b` takes `a`. A span may name a command without its required arguments
//!   ("waits for `ferry-agent install`"); then the command with `--help` must show its help.
#![allow(dead_code)]

use clap::error::ErrorKind;

/// A documented command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documented {
    /// Where it is: `FILE:LINE`.
    pub place: String,
    /// The arguments after the binary's name.
    pub args: Vec<String>,
    /// From a code block: must parse completely.
    pub strict: bool,
}

/// Every invocation of `bin` in `docs` (`(file name, Markdown text)`), placeholders replaced
/// from `samples` (`("RELEASE", "7")`; `$RELEASE` in code blocks uses the same table).
pub fn documented(bin: &str, docs: &[(&str, &str)], samples: &[(&str, &str)]) -> Vec<Documented> {
    let mut found = Vec::new();
    for (file, text) in docs {
        let mut prose = String::new();
        let mut lines = text.lines().enumerate();
        while let Some((i, line)) = lines.next() {
            let Some(lang) = line.trim_start().strip_prefix("```") else {
                prose.push_str(line);
                prose.push('\n');
                continue;
            };
            prose.push('\n');
            let shell = matches!(lang.trim(), "sh" | "bash" | "shell" | "console");
            let mut logical = String::new();
            let mut start = i + 2;
            let mut heredoc: Option<String> = None;
            for (j, line) in lines.by_ref() {
                prose.push('\n');
                if line.trim_start().starts_with("```") {
                    break;
                }
                if !shell {
                    continue;
                }
                if let Some(end) = &heredoc {
                    if line.trim() == end {
                        heredoc = None;
                    }
                    continue;
                }
                if logical.is_empty() {
                    start = j + 1;
                }
                match line.strip_suffix('\\') {
                    Some(part) => {
                        logical.push_str(part);
                        logical.push(' ');
                    }
                    None => {
                        logical.push_str(line);
                        heredoc = line.split_once("<<").map(|(_, w)| w.trim().trim_matches(['\'', '"']).to_owned());
                        for args in commands_in_line(bin, &logical, samples) {
                            found.push(Documented { place: format!("{file}:{start}"), args, strict: true });
                        }
                        logical.clear();
                    }
                }
            }
        }
        for (n, line) in prose.lines().enumerate() {
            for span in line.split('`').skip(1).step_by(2) {
                let rest = match span.strip_prefix(bin) {
                    Some(rest) if rest.is_empty() || rest.starts_with(' ') => rest,
                    _ => continue,
                };
                if rest.contains('<') {
                    continue; // `ferry <command> --help`: a pattern, not a command
                }
                for args in expand_span(rest, samples) {
                    found.push(Documented { place: format!("{file}:{}", n + 1), args, strict: false });
                }
            }
        }
    }
    found
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    /// Ends a command: `|`, `||`, `&&`, `;`, `>`, `$(`, `)`.
    End,
}

/// Splits a shell line into words and command ends (quotes respected, comments dropped).
fn tokens(line: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let flush = |word: &mut String, in_word: &mut bool, out: &mut Vec<Token>| {
        if *in_word {
            out.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    word.push(q);
                }
            }
            '#' if !in_word => break,
            c if c.is_whitespace() => flush(&mut word, &mut in_word, &mut out),
            '$' if chars.peek() == Some(&'(') => {
                chars.next();
                flush(&mut word, &mut in_word, &mut out);
                out.push(Token::End);
            }
            '|' | '&' | ';' | '>' | '<' | ')' => {
                flush(&mut word, &mut in_word, &mut out);
                out.push(Token::End);
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    flush(&mut word, &mut in_word, &mut out);
    out
}

/// The argument lists of every command `bin` in one logical shell line. `cargo run -p BIN --
/// ARGS` counts as `BIN ARGS`; `cargo build -p BIN` does not.
fn commands_in_line(bin: &str, line: &str, samples: &[(&str, &str)]) -> Vec<Vec<String>> {
    let tokens = tokens(line);
    let mut found = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if *token != Token::Word(bin.to_owned()) {
            continue;
        }
        let mut rest = tokens[i + 1..].iter().take_while(|t| **t != Token::End).map(|t| match t {
            Token::Word(w) => w.clone(),
            Token::End => unreachable!(),
        });
        let after_package = i > 0 && matches!(&tokens[i - 1], Token::Word(w) if w == "-p" || w == "--package");
        let args: Vec<String> = if after_package {
            if !rest.any(|w| w == "--") {
                continue;
            }
            rest.collect()
        } else {
            rest.collect()
        };
        let args = args
            .into_iter()
            .map(|w| match w.strip_prefix('$') {
                Some(var) => sample(var, samples).unwrap_or_else(|| panic!("no sample value for ${var} in {line:?}")),
                None => w,
            })
            .collect();
        found.push(args);
    }
    found
}

fn sample(name: &str, samples: &[(&str, &str)]) -> Option<String> {
    samples.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
}

/// The argument lists a code span stands for: `[…]` left out, then given.
fn expand_span(rest: &str, samples: &[(&str, &str)]) -> Vec<Vec<String>> {
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut depth = 0usize;
    for word in rest.split_whitespace() {
        if word == "…" || word == "..." {
            continue;
        }
        let opens = word.chars().filter(|c| *c == '[').count();
        let closes = word.chars().filter(|c| *c == ']').count();
        let optional = depth > 0 || opens > 0;
        depth = (depth + opens).saturating_sub(closes);
        let bare = word.trim_matches(['[', ']']);
        let bare = bare.split('|').next().unwrap_or(bare);
        let is_placeholder =
            bare.len() > 1 && bare.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit());
        let value = if is_placeholder { sample(bare, samples).unwrap_or_else(|| bare.to_owned()) } else { bare.into() };
        if !optional {
            without.push(value.clone());
        }
        with.push(value);
    }
    if with == without {
        vec![without]
    } else {
        vec![without, with]
    }
}

/// Checks every documented invocation against `P`: it parses (through `P`'s derived
/// `FromArgMatches`, which is where a flag defined twice panics), or, for a code span naming a
/// command without its required arguments, `--help` after it shows the help. Returns how many
/// were checked.
pub fn check_documented<P: clap::Parser>(bin: &str, docs: &[(&str, &str)], samples: &[(&str, &str)]) -> usize {
    let found = documented(bin, docs, samples);
    for doc in &found {
        let mut argv = vec![bin.to_owned()];
        argv.extend(doc.args.iter().cloned());
        let shown = argv.join(" ");
        let Err(e) = P::try_parse_from(&argv) else { continue };
        match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {}
            ErrorKind::MissingRequiredArgument
            | ErrorKind::MissingSubcommand
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                if !doc.strict =>
            {
                argv.push("--help".to_owned());
                let help = P::try_parse_from(&argv).map(|_| ()).unwrap_err();
                assert_eq!(help.kind(), ErrorKind::DisplayHelp, "{}: `{shown} --help`: {help}", doc.place);
            }
            // "`ferry serve --listen` overrides it": a flag named without its value exists (an
            // unknown one is `UnknownArgument`); the command before it must show its help.
            ErrorKind::InvalidValue if !doc.strict && argv.last().is_some_and(|a| a.starts_with('-')) => {
                argv.pop();
                argv.push("--help".to_owned());
                let help = P::try_parse_from(&argv).map(|_| ()).unwrap_err();
                assert_eq!(help.kind(), ErrorKind::DisplayHelp, "{}: `{shown} --help`: {help}", doc.place);
            }
            _ => panic!("{}: the documented `{shown}` does not parse: {e}", doc.place),
        }
    }
    found.len()
}

/// Checks the command tree: clap's own `debug_assert`, no subcommand argument reusing the id
/// or long flag of a global one (which makes clap panic when both are given), and `--help` of
/// every subcommand. Returns every subcommand path.
pub fn check_tree<P: clap::Parser>() -> Vec<Vec<String>> {
    let cmd = P::command();
    cmd.clone().debug_assert();
    let globals: Vec<(String, Option<String>)> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| (a.get_id().to_string(), a.get_long().map(str::to_owned)))
        .collect();
    let mut paths = Vec::new();
    walk(&cmd, &mut Vec::new(), &mut paths, &globals);
    for path in &paths {
        let mut argv = vec![cmd.get_name().to_owned()];
        argv.extend(path.iter().cloned());
        argv.push("--help".to_owned());
        let e = P::try_parse_from(&argv).map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DisplayHelp, "`{}`: {e}", argv.join(" "));
    }
    paths
}

fn walk(
    cmd: &clap::Command,
    path: &mut Vec<String>,
    paths: &mut Vec<Vec<String>>,
    globals: &[(String, Option<String>)],
) {
    for sub in cmd.get_subcommands() {
        path.push(sub.get_name().to_owned());
        for arg in sub.get_arguments() {
            for (id, long) in globals {
                let clash = arg.get_id().as_str() == id || (long.is_some() && arg.get_long() == long.as_deref());
                assert!(
                    !clash,
                    "`{}` has an argument `{}` clashing with the global `--{}`",
                    path.join(" "),
                    arg.get_id(),
                    long.as_deref().unwrap_or(id)
                );
            }
        }
        paths.push(path.clone());
        walk(sub, path, paths, globals);
        path.pop();
    }
}

/// Runs `bin --help`, then `--help` of every subcommand its help lists, recursively, with the
/// real binary; returns the subcommand paths. Each must exit 0 and print a usage line.
pub fn run_every_help(bin: &std::path::Path) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut queue = vec![Vec::<String>::new()];
    while let Some(path) = queue.pop() {
        let out = std::process::Command::new(bin)
            .args(&path)
            .arg("--help")
            .env_clear()
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "`{} --help` exited {:?}: {}", path.join(" "), out.status, text);
        assert!(text.contains("Usage:"), "`{} --help` printed no usage:\n{text}", path.join(" "));
        let commands = text.split("Commands:\n").nth(1).unwrap_or("");
        for line in commands.lines().take_while(|l| !l.trim().is_empty()) {
            // Subcommand lines are indented by two spaces; wrapped descriptions by more.
            let Some(name) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) else { continue };
            let name = name.split_whitespace().next().unwrap_or("");
            if name.is_empty() || name == "help" {
                continue;
            }
            let mut sub = path.clone();
            sub.push(name.to_owned());
            paths.push(sub.clone());
            queue.push(sub);
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_blocks_and_spans_are_found() {
        let doc = "Run `tool go ITEM [--json]` or `tool`.\n\n```sh\nA=$(tool make \"$ID\" \\\n  --quiet) # made\ncat <<EOF\ntool not this\nEOF\ncargo run -p tool -- serve\ncargo build -p tool\necho \"tool said\" || tool done\n```\n";
        let found = documented("tool", &[("D.md", doc)], &[("ITEM", "1"), ("ID", "7")]);
        let args: Vec<(Vec<&str>, bool)> =
            found.iter().map(|d| (d.args.iter().map(String::as_str).collect(), d.strict)).collect();
        assert_eq!(
            args,
            vec![
                (vec!["make", "7", "--quiet"], true),
                (vec!["serve"], true),
                (vec!["done"], true),
                (vec!["go", "1"], false),
                (vec!["go", "1", "--json"], false),
                (vec![], false),
            ]
        );
        assert_eq!(found[0].place, "D.md:4");
    }
}
