//! The structure of the code: imports run one way. A module of `host/src` or of the
//! legacy adapter never imports (through `crate::` or `super::` paths, outside
//! comments and unit tests) a module that imports it back, directly or through
//! others.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["runtime", "engine"]`) → its file.
type Modules = BTreeMap<Vec<String>, PathBuf>;

fn modules(root: &Path) -> Modules {
    let mut out = Modules::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The code of a file that counts: before its unit tests, without comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `module` (defined in `path`) names through `crate::` or `super::`
/// paths, one level of `{...}` groups included.
fn imports(module: &[String], path: &Path, all: &Modules) -> BTreeSet<Vec<String>> {
    let text = code(path);
    let is_path = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    let mut out = BTreeSet::new();
    for keyword in ["crate::", "super::"] {
        for (at, _) in text.match_indices(keyword) {
            if text[..at].chars().next_back().is_some_and(is_path) {
                continue; // inside a longer path (`super::super::`, `a::crate::`)
            }
            let head: String = text[at..].chars().take_while(|&c| is_path(c)).collect();
            let rest = &text[at + head.len()..];
            let mut paths = vec![head.clone()];
            if let Some(group) = rest.strip_prefix('{').and_then(|r| r.split('}').next()) {
                paths = group
                    .split(',')
                    .map(|item| format!("{head}{}", item.trim()))
                    .collect();
            }
            for path_text in paths {
                let mut segments: Vec<&str> =
                    path_text.split("::").filter(|s| !s.is_empty()).collect();
                let mut target: Vec<String> = Vec::new();
                if segments.first() == Some(&"super") {
                    target = module.to_vec();
                    while segments.first() == Some(&"super") {
                        target.pop();
                        segments.remove(0);
                    }
                } else {
                    segments.remove(0);
                }
                target.extend(
                    segments
                        .iter()
                        .take_while(|s| s.chars().all(|c| c.is_alphanumeric() || c == '_'))
                        .map(|s| s.to_string()),
                );
                // The longest prefix that is a module of its own.
                while !target.is_empty() && !all.contains_key(&target) {
                    target.pop();
                }
                if !target.is_empty() && target != module {
                    out.insert(target);
                }
            }
        }
    }
    out
}

/// Every strongly connected group of more than one module.
fn circles(root: &Path) -> Vec<Vec<String>> {
    let all = modules(root);
    let edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = all
        .iter()
        .map(|(m, p)| (m.clone(), imports(m, p, &all)))
        .collect();
    let reach = |from: &Vec<String>| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(m) = stack.pop() {
            for next in &edges[&m] {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<_, _> = all.keys().map(|m| (m.clone(), reach(m))).collect();
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut placed = BTreeSet::new();
    for m in all.keys() {
        if placed.contains(m) || !reachable[m].contains(m) {
            continue;
        }
        let group: Vec<String> = all
            .keys()
            .filter(|o| reachable[m].contains(*o) && reachable[*o].contains(m))
            .inspect(|o| {
                placed.insert((*o).clone());
            })
            .map(|o| o.join("::"))
            .collect();
        found.push(group);
    }
    found
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn no_module_of_the_host_or_the_legacy_adapter_imports_one_that_imports_it_back() {
    for root in ["host/src", "adapters/legacy/src"] {
        let found = circles(&repo().join(root));
        assert!(
            found.is_empty(),
            "import circles in {root}: {found:?}; make the dependency one-way (move what both need into a module of its own)"
        );
    }
}

#[test]
fn the_circle_check_finds_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(dir.path().join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    std::fs::write(
        dir.path().join("b.rs"),
        "// use crate::c::C; is a comment\npub struct B(super::a::A);\n",
    )
    .unwrap();
    assert_eq!(
        circles(dir.path()),
        [vec!["a".to_string(), "b".to_string()]]
    );
}
