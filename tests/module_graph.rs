//! No import cycles between modules (docs/ARCHITECTURE.md): data flows one way, so a
//! module never reaches back into one that uses it. Reads the sources of the CLI, the
//! node crate and the protocol crate, follows `crate::…` and `super::…` paths (test modules aside)
//! and fails on any cycle, naming its modules. A module and its own submodules may use
//! each other (a parent re-exports, a child takes its parent's types).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("source folder") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `node/core/mod.rs` → `node::core`; `lib.rs`, `main.rs` → the crate root ("").
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file
        .strip_prefix(root)
        .expect("under root")
        .with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The source without comments and without `#[cfg(test)] mod tests { … }` (tests may
/// reach anywhere).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `prefix` path in `code`, as its segments (`crate::a::b::C` → `[a, b, C]`).
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let boundary = rest[..i]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        rest = &rest[i + prefix.len()..];
        if !boundary {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        out.push(rest[..end].split("::").filter(|s| !s.is_empty()).collect());
    }
    out
}

fn graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .iter()
        .filter(|f| !f.to_string_lossy().ends_with("_tests.rs"))
        .map(|f| (module_of(root, f), f.clone()))
        .collect();
    // The longest prefix of `segments` that names a module.
    let resolve = |segments: &[&str]| -> Option<String> {
        (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|m| modules.contains_key(m))
    };
    let related = |a: &str, b: &str| {
        a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
    };
    let mut edges = BTreeMap::new();
    for (module, file) in &modules {
        let code = code(&std::fs::read_to_string(file).expect("source"));
        let parent: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        let parent = &parent[..parent.len().saturating_sub(1)];
        let mut to = BTreeSet::new();
        for p in paths_after(&code, "crate::") {
            to.extend(resolve(&p));
        }
        for p in paths_after(&code, "super::") {
            let full: Vec<&str> = parent.iter().copied().chain(p).collect();
            to.extend(resolve(&full));
        }
        to.retain(|t: &String| !t.is_empty() && !related(module, t));
        edges.insert(module.clone(), to);
    }
    edges
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.edges.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
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
        on_stack: BTreeSet::new(),
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
fn no_import_cycles_between_modules() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Each crate's sources, and how many modules with imports it has at least (so a
    // moved folder cannot make the test pass by finding nothing).
    for (root, at_least) in [
        (here.join("src"), 5),
        (here.join("crates/node/src"), 20),
        (here.join("crates/protocol/src"), 20),
    ] {
        let edges = graph(&root);
        assert!(
            edges.len() >= at_least,
            "{}: found {} modules",
            root.display(),
            edges.len()
        );
        let found = cycles(&edges);
        assert!(
            found.is_empty(),
            "{}: import cycles: {}",
            root.display(),
            found
                .iter()
                .map(|c| c.join(" ↔ "))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut edges = BTreeMap::new();
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    edges.insert("a".to_string(), set(&["b"]));
    edges.insert("b".to_string(), set(&["c"]));
    edges.insert("c".to_string(), set(&["a"]));
    edges.insert("d".to_string(), set(&["a"]));
    assert_eq!(cycles(&edges), vec![vec!["a", "b", "c"]]);
}

/// Lines of code in `text`: no blank lines, no comment lines, no test module.
fn code_lines(text: &str) -> usize {
    code(text).lines().filter(|l| !l.trim().is_empty()).count()
}

#[test]
fn no_module_of_the_node_or_the_cli_is_over_700_lines_of_code() {
    // One module, one responsibility (docs/ARCHITECTURE.md): past this a file holds
    // more than one thing and is split (as `node/core/uploads/` was, by phase).
    const MAX: usize = 700;
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut over = Vec::new();
    for root in [here.join("src"), here.join("crates/node/src")] {
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        for f in files {
            let n = code_lines(&std::fs::read_to_string(&f).expect("source"));
            if n > MAX {
                over.push(format!("{} ({n})", f.display()));
            }
        }
    }
    assert!(
        over.is_empty(),
        "over {MAX} lines of code: {}",
        over.join(", ")
    );
}

#[test]
fn code_lines_leave_out_comments_blanks_and_tests() {
    let text = "//! doc\nfn a() {}\n\n    // why\nfn b() {}\n#[cfg(test)]\nmod tests {\n    fn c() {}\n}\n";
    assert_eq!(code_lines(text), 2);
}
