//! The architecture's rules, checked on the sources: no import cycle between the modules of a
//! crate, no source file over 800 lines, no function over 100 lines (`#[cfg(test)]` code
//! aside). Each test prints every violation it finds, with its file and line.
//!
//! The sources are read with a small lexer, not a Rust parser: comments, strings and
//! `#[cfg(test)]` items are blanked out (line numbers kept), then paths are read from the
//! rest. Module edges come from `crate::…` and `super::…` paths (in `use` trees and in code),
//! from paths that start with a child module's name, and, in a crate's root, from `pub use`
//! re-exports (`crate::Diff` is an edge to the module that defines `Diff`). A module's
//! submodules count as part of it: cycles are looked for between the top-level modules of
//! each crate (the crate root being one more unit), and between the children of each
//! top-level folder (`src/controller/`, `adapters/src/live/`…).
//!
//! `cargo test --test integration architecture` runs them (the whole suite does too).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::support::repo;

const FILE_LINES_MAX: usize = 800;
const FN_LINES_MAX: usize = 100;

/// Each crate's sources: its `src/` folder and its root file.
const CRATES: &[(&str, &str)] = &[
    ("billshadow", "src/main.rs"),
    ("billshadow-comparisons", "comparisons/src/lib.rs"),
    ("billshadow-adapters", "adapters/src/lib.rs"),
    ("billshadow-reports", "reports/src/lib.rs"),
];

/// Further sources held to the size rules: the sample stacks and the build script.
const OTHER_SOURCES: &[&str] = &[
    "examples/stacks/legacy.rs",
    "examples/stacks/modern.rs",
    "build.rs",
];

/// One source file of a crate: its module path (`[]` for the crate root) and its text with
/// comments, strings and `#[cfg(test)]` items blanked out.
struct Source {
    path: PathBuf,
    module: Vec<String>,
    lines_total: usize,
    /// Lines spanned by `#[cfg(test)]` items.
    lines_test: usize,
    code: String,
}

impl Source {
    fn shown(&self) -> String {
        self.path
            .strip_prefix(repo())
            .unwrap_or(&self.path)
            .display()
            .to_string()
    }
}

/// The crate's files, each with its module path; files declared only under `#[cfg(test)]`
/// are left out.
fn crate_sources(root: &Path) -> Vec<Source> {
    let mut out = Vec::new();
    let mut queue = vec![(root.to_path_buf(), Vec::<String>::new())];
    while let Some((path, module)) = queue.pop() {
        let text = std::fs::read_to_string(&path).unwrap();
        let (code, lines_test) = blank_tests(&blank_comments_and_strings(&text));
        let dir = if module.is_empty() || path.file_name().unwrap() == "mod.rs" {
            path.parent().unwrap().to_path_buf()
        } else {
            path.with_extension("")
        };
        for child in declared_modules(&code) {
            let file = dir.join(format!("{child}.rs"));
            let folder = dir.join(&child).join("mod.rs");
            let found = if file.exists() { file } else { folder };
            if found.exists() {
                let mut m = module.clone();
                m.push(child);
                queue.push((found, m));
            }
        }
        out.push(Source {
            lines_total: text.lines().count(),
            lines_test,
            path,
            module,
            code,
        });
    }
    out.sort_by(|a, b| a.module.cmp(&b.module));
    out
}

/// `mod NAME;` declarations (out-of-line modules) in blanked code.
fn declared_modules(code: &str) -> Vec<String> {
    let tokens = tokens(code);
    let mut out = Vec::new();
    for w in tokens.windows(3) {
        if w[0].1 == "mod" && is_ident(&w[1].1) && w[2].1 == ";" {
            out.push(w[1].1.clone());
        }
    }
    out
}

/// Comments, string and character literals replaced by spaces, line ends kept.
fn blank_comments_and_strings(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&b, i) {
            // r"…", r#"…"#, br"…": up to the quote followed by as many #.
            while b[i] != '"' {
                blank(&mut out, b[i]);
                i += 1;
            }
            blank(&mut out, b[i]);
            i += 1;
            while i < b.len() {
                if b[i] == '"' && (0..hashes).all(|k| b.get(i + 1 + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == '"' {
            blank(&mut out, c);
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                blank(&mut out, b[i]);
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && is_char_literal(&b, i) {
            blank(&mut out, c);
            i += 1;
            while i < b.len() && b[i] != '\'' {
                if b[i] == '\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                blank(&mut out, b[i]);
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// At `i`, the start of a raw string (`r"`, `r#"`, `br"`…): how many `#` it uses.
fn raw_string_start(b: &[char], i: usize) -> Option<usize> {
    if i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if b[j] == 'b' {
        j += 1;
    }
    if b.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while b.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (b.get(j) == Some(&'"')).then_some(hashes)
}

/// A `'` that opens a character literal (`'a'`, `'\n'`, `'\u{1F600}'`), not a lifetime.
fn is_char_literal(b: &[char], i: usize) -> bool {
    matches!(
        (b.get(i + 1), b.get(i + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// Items under `#[cfg(test)]` (a test module, a test-only function or `use`) blanked out,
/// and how many lines they span.
fn blank_tests(code: &str) -> (String, usize) {
    let chars: Vec<char> = code.chars().collect();
    let mut out = chars.clone();
    let mut lines_test = 0;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '#' || !starts_attribute(&chars, i, "cfg(test)") {
            i += 1;
            continue;
        }
        let end = item_end(&chars, i);
        lines_test += 1 + chars[i..end].iter().filter(|c| **c == '\n').count();
        for c in &mut out[i..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = end;
    }
    (out.into_iter().collect(), lines_test)
}

/// Where the item whose attributes start at `i` ends: after its first `;` outside brackets
/// and braces, or after the `}` closing its first `{`.
fn item_end(chars: &[char], i: usize) -> usize {
    let mut braces = 0i32;
    let mut brackets = 0i32;
    for (j, c) in chars.iter().enumerate().skip(i) {
        match c {
            '[' => brackets += 1,
            ']' => brackets -= 1,
            '{' if brackets == 0 => braces += 1,
            '}' if brackets == 0 => {
                braces -= 1;
                if braces == 0 {
                    return j + 1;
                }
            }
            ';' if braces == 0 && brackets == 0 => return j + 1,
            _ => {}
        }
    }
    chars.len()
}

/// Whether `#[…]` at `i` is the attribute `inner` (white space ignored).
fn starts_attribute(chars: &[char], i: usize, inner: &str) -> bool {
    let wanted: Vec<char> = format!("#[{inner}]").chars().collect();
    let mut k = 0;
    let mut j = i;
    while j < chars.len() && k < wanted.len() {
        if chars[j].is_whitespace() {
            j += 1;
            continue;
        }
        if chars[j] != wanted[k] {
            return false;
        }
        j += 1;
        k += 1;
    }
    k == wanted.len()
}

fn is_ident(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Identifiers, `::` and single punctuation, each with its line (1-based).
fn tokens(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut line = 1;
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((line, chars[start..i].iter().collect()));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((line, "::".to_owned()));
            i += 2;
        } else {
            out.push((line, c.to_string()));
            i += 1;
        }
    }
    out
}

/// A reference from a file to a module path, with where it is.
struct Reference {
    target: Vec<String>,
    line: usize,
}

/// Every path this file uses that names something of its own crate, made absolute.
fn references(source: &Source, children: &BTreeSet<Vec<String>>) -> Vec<Reference> {
    let toks = tokens(&source.code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let after_path = i > 0 && toks[i - 1].1 == "::";
        if toks[i].1 == "use" {
            let (paths, end) = use_tree(&toks, i + 1);
            for (line, path) in paths {
                if let Some(target) = absolute(&source.module, &path, children) {
                    out.push(Reference { target, line });
                }
            }
            i = end;
            continue;
        }
        if !after_path && is_ident(&toks[i].1) && toks.get(i + 1).is_some_and(|t| t.1 == "::") {
            let mut path = vec![toks[i].1.clone()];
            let mut j = i + 1;
            while j + 1 < toks.len() && toks[j].1 == "::" && is_ident(&toks[j + 1].1) {
                path.push(toks[j + 1].1.clone());
                j += 2;
            }
            if let Some(target) = absolute(&source.module, &path, children) {
                out.push(Reference {
                    target,
                    line: toks[i].0,
                });
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// The paths of the `use` tree starting at `i` (`a::b::{c, d::e as f, *}`), and the index
/// after its `;`.
fn use_tree(toks: &[(usize, String)], i: usize) -> (Vec<(usize, Vec<String>)>, usize) {
    let mut out = Vec::new();
    let mut prefix_stack: Vec<Vec<String>> = vec![Vec::new()];
    let mut current: Vec<String> = Vec::new();
    let mut line = toks.get(i).map_or(0, |t| t.0);
    let mut j = i;
    while j < toks.len() {
        let t = &toks[j].1;
        match t.as_str() {
            ";" => {
                if !current.is_empty() {
                    out.push((line, current.clone()));
                }
                return (out, j + 1);
            }
            "{" => {
                prefix_stack.push(current.clone());
            }
            "}" => {
                if current.len() > prefix_stack.last().unwrap().len() {
                    out.push((line, current.clone()));
                }
                prefix_stack.pop();
                current = prefix_stack.last().cloned().unwrap_or_default();
            }
            "," => {
                if current.len() > prefix_stack.last().unwrap().len() {
                    out.push((line, current.clone()));
                }
                current = prefix_stack.last().unwrap().clone();
            }
            "as" => {
                // The alias is not part of the path.
                j += 1;
            }
            "::" | "*" => {}
            _ if is_ident(t) => {
                if current.len() == prefix_stack.last().unwrap().len() {
                    line = toks[j].0;
                }
                current.push(t.clone());
            }
            _ => {}
        }
        j += 1;
    }
    (out, j)
}

/// `path`, as written in the module `module`, as a path from the crate root, or `None` when
/// it does not name something of this crate (std, another crate, a local name).
fn absolute(
    module: &[String],
    path: &[String],
    children: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let first = path.first()?;
    match first.as_str() {
        "crate" => Some(path[1..].to_vec()),
        "super" | "self" => {
            let mut base = module.to_vec();
            let mut rest = path;
            while let Some(seg) = rest.first() {
                match seg.as_str() {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            Some(base)
        }
        _ => {
            let mut child = module.to_vec();
            child.push(first.clone());
            children.contains(&child).then(|| {
                let mut p = module.to_vec();
                p.extend(path.iter().cloned());
                p
            })
        }
    }
}

/// A unit of the cycle check: the crate root or folder root, or one of its child modules.
const ROOT: &str = "(root)";

/// What `module` (a folder root's re-exports resolved) belongs to among `parent`'s children.
fn unit_of(
    parent: &[String],
    path: &[String],
    children: &BTreeSet<Vec<String>>,
    reexports: &BTreeMap<Vec<String>, String>,
) -> Option<String> {
    if !path.starts_with(parent) {
        return None;
    }
    let Some(next) = path.get(parent.len()) else {
        return Some(ROOT.to_owned());
    };
    let mut child = parent.to_vec();
    child.push(next.clone());
    if children.contains(&child) {
        return Some(next.clone());
    }
    let mut item = parent.to_vec();
    item.push(next.clone());
    Some(
        reexports
            .get(&item)
            .cloned()
            .unwrap_or_else(|| ROOT.to_owned()),
    )
}

/// Items a module root re-exports from its children (`pub use diff::{Diff, …}`): the item's
/// path at the root, and the child that defines it. Exported macros (`crate::outln!`) count
/// as their defining module's.
fn reexports(
    sources: &[Source],
    children: &BTreeSet<Vec<String>>,
) -> BTreeMap<Vec<String>, String> {
    let mut out = BTreeMap::new();
    for source in sources {
        let toks = tokens(&source.code);
        for w in toks.windows(3) {
            if w[0].1 == "macro_rules" && w[1].1 == "!" && !source.module.is_empty() {
                out.insert(vec![w[2].1.clone()], source.module[0].clone());
            }
        }
        for i in 0..toks.len() {
            if toks[i].1 != "use" {
                continue;
            }
            let (paths, _) = use_tree(&toks, i + 1);
            for (_, path) in paths {
                let Some(target) = absolute(&source.module, &path, children) else {
                    continue;
                };
                // `use child::Item` at a module root: `root::Item` is `child`'s.
                if target.len() == source.module.len() + 2 && target.starts_with(&source.module) {
                    let mut at_root = source.module.clone();
                    at_root.push(target.last().unwrap().clone());
                    out.insert(at_root, target[source.module.len()].clone());
                }
            }
        }
    }
    out
}

/// One edge of a unit graph, with the places that make it.
type Edges = BTreeMap<(String, String), Vec<String>>;

/// The edges between `parent`'s children made by the files under `parent`.
fn edges_within(
    parent: &[String],
    sources: &[Source],
    children: &BTreeSet<Vec<String>>,
    reexports: &BTreeMap<Vec<String>, String>,
) -> Edges {
    let mut edges = Edges::new();
    for source in sources.iter().filter(|s| s.module.starts_with(parent)) {
        let Some(from) = unit_of(parent, &source.module, children, reexports) else {
            continue;
        };
        for r in references(source, children) {
            let Some(to) = unit_of(parent, &r.target, children, reexports) else {
                continue;
            };
            if to != from {
                edges.entry((from.clone(), to)).or_default().push(format!(
                    "{}:{} ({})",
                    source.shown(),
                    r.line,
                    r.target.join("::")
                ));
            }
        }
    }
    edges
}

/// The strongly connected components of more than one unit (Tarjan).
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = edges.keys().flat_map(|(a, b)| [a, b]).collect();
    let nodes: Vec<&String> = nodes.into_iter().collect();
    let index_of: BTreeMap<&String, usize> =
        nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut adjacent = vec![Vec::new(); nodes.len()];
    for (a, b) in edges.keys() {
        adjacent[index_of[a]].push(index_of[b]);
    }
    struct Tarjan<'a> {
        adjacent: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for &w in &self.adjacent[v] {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.out.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        adjacent: &adjacent,
        index: vec![None; nodes.len()],
        low: vec![0; nodes.len()],
        on_stack: vec![false; nodes.len()],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..nodes.len() {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    let mut out: Vec<Vec<String>> = t
        .out
        .into_iter()
        .map(|c| {
            let mut names: Vec<String> = c.into_iter().map(|i| nodes[i].clone()).collect();
            names.sort();
            names
        })
        .collect();
    out.sort();
    out
}

/// Every cycle among `parent`'s children, with the references that close it.
fn report_cycles(crate_name: &str, parent: &[String], edges: &Edges, report: &mut String) {
    for component in cycles(edges) {
        let scope = if parent.is_empty() {
            format!("{crate_name}: top-level modules")
        } else {
            format!("{crate_name}: modules in {}", parent.join("::"))
        };
        let _ = writeln!(
            report,
            "{scope} import each other: {}",
            component.join(", ")
        );
        for ((from, to), places) in edges {
            if component.contains(from) && component.contains(to) {
                let _ = writeln!(report, "    {from} -> {to}:");
                for place in places.iter().take(5) {
                    let _ = writeln!(report, "        {place}");
                }
                if places.len() > 5 {
                    let _ = writeln!(report, "        … and {} more", places.len() - 5);
                }
            }
        }
    }
}

fn all_crates() -> Vec<(&'static str, Vec<Source>)> {
    CRATES
        .iter()
        .map(|(name, root)| (*name, crate_sources(&repo().join(root))))
        .collect()
}

fn finish(what: &str, report: &str) {
    assert!(report.is_empty(), "architecture: {what}:\n{report}");
}

#[test]
fn architecture_no_import_cycle_between_modules() {
    let mut report = String::new();
    for (name, sources) in all_crates() {
        let children: BTreeSet<Vec<String>> = sources
            .iter()
            .filter(|s| !s.module.is_empty())
            .map(|s| s.module.clone())
            .collect();
        let reexports = reexports(&sources, &children);
        let edges = edges_within(&[], &sources, &children, &reexports);
        report_cycles(name, &[], &edges, &mut report);
        // One level down: the children of each top-level folder module.
        let folders: BTreeSet<Vec<String>> = children
            .iter()
            .filter(|m| m.len() == 2)
            .map(|m| m[..1].to_vec())
            .collect();
        for folder in folders {
            let edges = edges_within(&folder, &sources, &children, &reexports);
            report_cycles(name, &folder, &edges, &mut report);
        }
    }
    finish("import cycles", &report);
}

fn other_sources() -> Vec<Source> {
    OTHER_SOURCES
        .iter()
        .map(|p| {
            let path = repo().join(p);
            let text = std::fs::read_to_string(&path).unwrap();
            let (code, lines_test) = blank_tests(&blank_comments_and_strings(&text));
            Source {
                lines_total: text.lines().count(),
                lines_test,
                code,
                path,
                module: Vec::new(),
            }
        })
        .collect()
}

#[test]
fn architecture_no_source_file_over_800_lines() {
    let mut report = String::new();
    let sources = all_crates()
        .into_iter()
        .flat_map(|(_, s)| s)
        .chain(other_sources());
    for source in sources {
        let lines = source.lines_total - source.lines_test;
        if lines > FILE_LINES_MAX {
            let _ = writeln!(
                report,
                "{}: {lines} lines outside tests ({} in all; at most {FILE_LINES_MAX})",
                source.shown(),
                source.lines_total
            );
        }
    }
    finish(
        &format!("source files over {FILE_LINES_MAX} lines"),
        &report,
    );
}

/// Every function (outside `#[cfg(test)]` items) longer than the limit: its name, where it
/// starts and how many lines it has, from `fn` to its closing brace.
fn long_functions(source: &Source) -> Vec<(String, usize, usize)> {
    let toks = tokens(&source.code);
    let mut out = Vec::new();
    for i in 0..toks.len() {
        if toks[i].1 != "fn" || !toks.get(i + 1).is_some_and(|t| is_ident(&t.1)) {
            continue;
        }
        // The body: the first `{` after the signature, unless a `;` ends it first (a trait
        // method without a body). Parentheses and brackets in the signature are skipped.
        let mut j = i + 2;
        let mut depth = 0i32;
        while j < toks.len() {
            match toks[j].1.as_str() {
                "(" | "[" => depth += 1,
                ")" | "]" => depth -= 1,
                "{" | ";" if depth == 0 => break,
                _ => {}
            }
            j += 1;
        }
        if j >= toks.len() || toks[j].1 == ";" {
            continue;
        }
        let mut braces = 0i32;
        let mut k = j;
        while k < toks.len() {
            match toks[k].1.as_str() {
                "{" => braces += 1,
                "}" => {
                    braces -= 1;
                    if braces == 0 {
                        break;
                    }
                }
                _ => {}
            }
            k += 1;
        }
        let end = toks.get(k).map_or(toks[i].0, |t| t.0);
        let lines = end - toks[i].0 + 1;
        if lines > FN_LINES_MAX {
            out.push((toks[i + 1].1.clone(), toks[i].0, lines));
        }
    }
    out
}

#[test]
fn architecture_no_function_over_100_lines() {
    let mut report = String::new();
    let sources = all_crates()
        .into_iter()
        .flat_map(|(_, s)| s)
        .chain(other_sources());
    for source in sources {
        for (name, line, lines) in long_functions(&source) {
            let _ = writeln!(
                report,
                "{}:{line}: fn {name}: {lines} lines (at most {FN_LINES_MAX})",
                source.shown()
            );
        }
    }
    finish(&format!("functions over {FN_LINES_MAX} lines"), &report);
}
