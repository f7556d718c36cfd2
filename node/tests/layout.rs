//! The shape of `node/src`, checked: no dependency cycles among its top-level modules, and no
//! source file over 600 lines unless its module docs say why it is long ("long because",
//! "longer than" or "long on purpose").
//!
//! A module A depends on B when A's files (comments and test modules left out) name
//! `crate::B`, as a path or in a `use crate::{..}` list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest a source file may be without a reason stated in its module docs.
const MAX_LINES: usize = 600;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules of `node/src` and their files (a module's own file and every file
/// under its directory).
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let root = src();
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(&root).expect("read node/src") {
        let path = entry.expect("entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if stem == "lib" || stem == "main" {
            continue;
        }
        let files = modules.entry(stem.to_owned()).or_default();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    modules
}

/// A file's code as a dependency: without its test module and without comments.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `code` names through `crate::`.
fn named(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the first segment of each top-level item.
            let (mut depth, mut item_start) = (0usize, true);
            for (i, c) in list.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        out.insert(ident(&list[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            for w in &self.edges[v] {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.stack.contains(&w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn the_top_level_modules_have_no_dependency_cycle() {
    let modules = modules();
    assert!(modules.len() > 10, "found only {modules:?}");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, files) in &modules {
        let deps = edges.entry(name.clone()).or_default();
        for file in files {
            let is_test = file.file_name().is_some_and(|f| f == "tests.rs")
                || file.components().any(|c| c.as_os_str() == "tests");
            if is_test {
                continue;
            }
            let text = std::fs::read_to_string(file).expect("read a source file");
            deps.extend(
                named(&code_of(&text))
                    .into_iter()
                    .filter(|d| d != name && modules.contains_key(d)),
            );
        }
    }
    let found = cycles(&edges);
    let described: Vec<String> = found
        .iter()
        .map(|c| {
            let inside: BTreeSet<&String> = c.iter().collect();
            let arrows: Vec<String> = c
                .iter()
                .map(|m| {
                    let to: Vec<&str> = edges[m]
                        .iter()
                        .filter(|d| inside.contains(d))
                        .map(String::as_str)
                        .collect();
                    format!("{m} -> {}", to.join(", "))
                })
                .collect();
            arrows.join("; ")
        })
        .collect();
    assert!(found.is_empty(), "dependency cycles: {described:#?}");
}

#[test]
fn the_parser_sees_paths_and_use_lists() {
    let code = "use crate::{a, b::c, d::{e, f}};\nfn x() { crate::g::h(); }";
    let got: Vec<String> = named(code).into_iter().collect();
    assert_eq!(got, ["a", "b", "d", "g"]);
    let mut edges = BTreeMap::new();
    edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    edges.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    edges.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(cycles(&edges), vec![vec!["a".to_owned(), "b".to_owned()]]);
}

#[test]
fn long_files_say_why_they_are_long() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut unexplained = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read a source file");
        let lines = text.lines().count();
        if lines <= MAX_LINES {
            continue;
        }
        let docs: String = text
            .lines()
            .take_while(|l| l.starts_with("//!") || l.starts_with("#!") || l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if !["long because", "longer than", "long on purpose"]
            .iter()
            .any(|why| docs.contains(why))
        {
            let rel = file
                .strip_prefix(src())
                .unwrap_or(&file)
                .display()
                .to_string();
            unexplained.push(format!("{rel} ({lines} lines)"));
        }
    }
    assert!(
        unexplained.is_empty(),
        "files over {MAX_LINES} lines whose module docs do not say why they are long: \
         {unexplained:?}"
    );
}
