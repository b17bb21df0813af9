//! The README and `docs/` stay true to the tree and the binary: every relative link resolves,
//! and the README's command list is exactly what `lavit --help` offers.

use crate::common::{ok, root};

/// Relative link targets (`](path)`, anchors dropped) of a Markdown text.
fn links(md: &str) -> Vec<String> {
    md.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|t| !t.starts_with("http") && !t.starts_with('#') && !t.is_empty())
        .map(|t| t.split('#').next().unwrap_or(t).to_string())
        .collect()
}

#[test]
fn every_relative_link_of_the_docs_resolves() {
    let root = root();
    let mut files = vec![
        root.join("README.md"),
        root.join("backends/README.md"),
        root.join("web-demo/README.md"),
        root.join("assets/synthetic/README.md"),
    ];
    for e in std::fs::read_dir(root.join("docs")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "md") {
            files.push(e.path());
        }
    }
    let mut broken = Vec::new();
    for f in &files {
        let md = std::fs::read_to_string(f).unwrap();
        let dir = f.parent().unwrap();
        for l in links(&md) {
            if !dir.join(&l).exists() {
                broken.push(format!("{}: {l}", f.strip_prefix(&root).unwrap().display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_lists_exactly_the_commands_of_lavit_help() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let listed: Vec<&str> = readme
        .split("`lavit --help` lists the commands:")
        .nth(1)
        .expect("the README's command list")
        .split('.')
        .next()
        .unwrap()
        .split('`')
        .skip(1)
        .step_by(2)
        .collect();
    let help = ok(&["--help"]);
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert_eq!(listed, commands, "README's command list vs `lavit --help`");
}

/// The README's example runs as written (with its `/tmp/` paths in a temporary directory) and
/// prints what the README says it prints (the `# ` lines after `lavit infer`).
#[test]
fn the_readme_example_runs_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let block = readme
        .split("```bash")
        .find(|b| b.contains("lavit infer"))
        .and_then(|b| b.split("```").next())
        .expect("the README's infer example");
    let tmp = tempfile::tempdir().unwrap();
    let tmp_dir = format!("{}/", tmp.path().display());
    // Commands (continuation lines joined) and the comment lines that follow each.
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        let t = line.trim();
        if let Some(c) = t.strip_prefix("# ") {
            if let Some(last) = steps.last_mut() {
                last.1.push(c.to_string());
            }
        } else if let Some(cont) = t.strip_suffix('\\') {
            pending.push_str(cont);
        } else if !t.is_empty() {
            pending.push_str(t);
            steps.push((std::mem::take(&mut pending), vec![]));
        }
    }
    assert!(steps.len() >= 2, "{block}");
    for (cmd, expected) in &steps {
        let args = shell_words(&cmd.replace("/tmp/", &tmp_dir));
        assert_eq!(args[0], "lavit", "{cmd}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lavit"))
            .args(&args[1..])
            .current_dir(root())
            .output()
            .unwrap();
        // The answer goes to stdout, the latent steps' summary to stderr.
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .replace(&tmp_dir, "/tmp/");
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args[1] == "infer" {
            for e in expected {
                assert!(
                    printed.contains(e.as_str()),
                    "{cmd}: expected `{e}` in\n{printed}"
                );
            }
        }
    }
}

/// A command line split as a shell splits it: on whitespace outside double quotes.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}
