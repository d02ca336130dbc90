//! Two claims about imports, each kept true by a test.
//!
//! The import graph of src/ has no cycle: imports flow one way, from the pingora layer down to
//! the pure modules, and inside config/ from the top level down to the sections and the
//! readers they share.
//!
//! Every module of the library (a file, or an inline module that is not test-only) is a node.
//! A module uses another when it names it, or an item in it, through `crate::`, `super::`,
//! `self::`, one of its child modules or one of its own imports: in a `use`, or anywhere in its
//! code, macro arguments included. A name re-exported with `use` counts as the module it comes
//! from, so a section that takes a helper through its parent's re-export still uses the helper's
//! module.
//!
//! A module and the modules inside it are one unit: the parent's file declares its children and
//! re-exports them, and the children use what it defines (`super::Gateway`). So an edge
//! between a module and its own ancestor is not counted; every other edge is, between siblings
//! or across the tree. Test-only code (`#[cfg(test)]`) is left out: a test may reach anywhere.
//!
//! Each test binary compiles only the helpers of tests/common/ it uses: it lists them in its
//! own `#[path = "common"] pub mod common { pub mod gateway; ... }`, and lists none it does
//! not name (directly, or through another helper it lists, as `gateway` uses `client`). The
//! module is the unit: a helper's `pub` items that one binary does not call are its API and are
//! not reported, but its private dead code and unused imports are, in every binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module, as its path from the crate root: `[]` is the crate, `["config", "section"]` is
/// `crate::config::section`.
type Module = Vec<String>;

/// The graph's edges, each with the first path that makes it, as written, for the message.
type Edges = BTreeMap<(Module, Module), String>;

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".to_owned()
    } else {
        format!("crate::{}", m.join("::"))
    }
}

fn module(path: &[&str]) -> Module {
    path.iter().map(|s| s.to_string()).collect()
}

/// Every module of the library that has a file, from the file's path.
fn module_files(src: &Path) -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut modules = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap().with_extension("");
        let mut module: Module = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        match module.last().map(String::as_str) {
            // The binary is a crate of its own, which uses the library by its name.
            Some("main") if module.len() == 1 => continue,
            Some("lib") if module.len() == 1 => module.clear(),
            Some("mod") => {
                module.pop();
            }
            _ => {}
        }
        modules.insert(module, file);
    }
    modules
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// Every `use` in a tree as (the name it binds, the path it names); a glob binds `*`.
fn use_bindings(
    prefix: &mut Vec<String>,
    tree: &syn::UseTree,
    out: &mut Vec<(String, Vec<String>)>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_bindings(prefix, &p.tree, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) if n.ident == "self" => {
            if let Some(last) = prefix.last() {
                out.push((last.clone(), prefix.clone()));
            }
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            path.push(n.ident.to_string());
            out.push((n.ident.to_string(), path));
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            path.push(r.ident.to_string());
            out.push((r.rename.to_string(), path));
        }
        syn::UseTree::Glob(_) => out.push(("*".to_owned(), prefix.clone())),
        syn::UseTree::Group(g) => {
            for tree in &g.items {
                use_bindings(prefix, tree, out);
            }
        }
    }
}

/// What the library's modules are and what their `use`s bind, to resolve a path to the module
/// it names.
#[derive(Default)]
struct Index {
    /// Every module, inline ones included.
    known: BTreeSet<Module>,
    /// Each module's `use`s: (module, name bound) to the path named, as written there.
    uses: BTreeMap<(Module, String), Vec<String>>,
}

impl Index {
    /// The deepest module a path written in `from` names, following `use`s and re-exports.
    fn resolve(&self, from: &Module, segments: &[String], depth: usize) -> Option<Module> {
        let first = segments.first()?;
        let (mut base, rest) = match first.as_str() {
            "crate" => (Vec::new(), &segments[1..]),
            "self" => (from.clone(), &segments[1..]),
            "super" => {
                let mut base = from.clone();
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                (base, rest)
            }
            _ => (from.clone(), segments),
        };
        let mut rest = rest;
        while let Some(segment) = rest.first() {
            base.push(segment.clone());
            if self.known.contains(&base) {
                rest = &rest[1..];
                continue;
            }
            base.pop();
            break;
        }
        // The next name is not a module: an item of `base`, or a name a `use` there binds.
        if let Some(name) = rest.first().filter(|_| depth < 16) {
            if let Some(path) = self.uses.get(&(base.clone(), name.clone())) {
                let mut target = path.clone();
                target.extend(rest[1..].iter().cloned());
                return self.resolve(&base, &target, depth + 1).or(Some(base));
            }
        }
        // A path that starts outside the crate (std, a dependency) or at a local item.
        let outside =
            rest.len() == segments.len() && !["crate", "self", "super"].contains(&first.as_str());
        (!outside || base != *from).then_some(base)
    }
}

/// Collects the modules that one module uses.
struct Collector<'a> {
    index: &'a Index,
    /// The module being read.
    current: Module,
    edges: &'a mut Edges,
}

impl Collector<'_> {
    fn path(&mut self, segments: &[String]) {
        let Some(target) = self.index.resolve(&self.current, segments, 0) else {
            return;
        };
        // A module and its ancestors are one unit; so is a module and itself.
        let related = target.starts_with(&self.current) || self.current.starts_with(&target);
        if !related {
            self.edges
                .entry((self.current.clone(), target))
                .or_insert_with(|| segments.join("::"));
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if is_test_only(&m.attrs) {
            return;
        }
        if let Some((_, items)) = &m.content {
            self.current.push(m.ident.to_string());
            for item in items {
                self.visit_item(item);
            }
            self.current.pop();
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test_only(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        if !is_test_only(&i.attrs) {
            syn::visit::visit_item_impl(self, i);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if is_test_only(&u.attrs) {
            return;
        }
        let mut bindings = Vec::new();
        use_bindings(&mut Vec::new(), &u.tree, &mut bindings);
        for (_, path) in bindings {
            self.path(&path);
        }
    }

    /// `pub(super)` and `pub(in crate::x)` name where an item is visible, not what it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.path(&segments);
        syn::visit::visit_path(self, p);
    }

    /// Macro arguments are tokens, not syntax: their paths are found in the tokens' text, where
    /// `crate::a::b` is written `crate :: a :: b`.
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        syn::visit::visit_macro(self, m);
        let text = m.tokens.to_string();
        let words: Vec<&str> = text.split_whitespace().collect();
        for (i, word) in words.iter().enumerate() {
            if words.get(i + 1) != Some(&"::") || i > 0 && words[i - 1] == "::" {
                continue;
            }
            let mut segments = vec![word.to_string()];
            let mut j = i + 1;
            while words.get(j) == Some(&"::") {
                let Some(next) = words.get(j + 1) else { break };
                let ident = next.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_'));
                segments.push(ident.to_owned());
                j += 2;
            }
            self.path(&segments);
        }
    }
}

/// Indexes the modules inside a module's items (inline ones) and the `use`s of each; test-only
/// modules, inline or in a file of their own, are collected in `test_only`.
fn index_items(
    module: &Module,
    items: &[syn::Item],
    index: &mut Index,
    test_only: &mut BTreeSet<Module>,
) {
    for item in items {
        match item {
            syn::Item::Mod(m) => {
                let mut inner = module.clone();
                inner.push(m.ident.to_string());
                if is_test_only(&m.attrs) {
                    test_only.insert(inner);
                } else if let Some((_, items)) = &m.content {
                    index.known.insert(inner.clone());
                    index_items(&inner, items, index, test_only);
                }
            }
            syn::Item::Use(u) if !is_test_only(&u.attrs) => {
                let mut bindings = Vec::new();
                use_bindings(&mut Vec::new(), &u.tree, &mut bindings);
                for (name, path) in bindings {
                    index.uses.insert((module.clone(), name), path);
                }
            }
            _ => {}
        }
    }
}

/// The import graph of the library in `src`.
fn graph(src: &Path) -> Edges {
    let files = module_files(src);
    let parsed: BTreeMap<Module, syn::File> = files
        .iter()
        .map(|(module, file)| {
            let text = std::fs::read_to_string(file).unwrap();
            let ast = syn::parse_file(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
            (module.clone(), ast)
        })
        .collect();
    let mut index = Index {
        known: files.keys().cloned().collect(),
        ..Index::default()
    };
    let mut test_only = BTreeSet::new();
    for (module, ast) in &parsed {
        index_items(module, &ast.items, &mut index, &mut test_only);
    }
    let mut edges = Edges::new();
    for (module, ast) in &parsed {
        // A test-only module, or one inside it.
        if (1..=module.len()).any(|n| test_only.contains(&module[..n])) {
            continue;
        }
        let mut collector = Collector {
            index: &index,
            current: module.clone(),
            edges: &mut edges,
        };
        for item in &ast.items {
            collector.visit_item(item);
        }
    }
    edges
}

/// The groups of modules that use each other in a circle: the strongly connected components
/// with more than one module (Tarjan's algorithm).
fn cycles(edges: &Edges) -> Vec<Vec<Module>> {
    let mut next: BTreeMap<&Module, Vec<&Module>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
        next.entry(to).or_default();
    }
    struct State<'a> {
        next: &'a BTreeMap<&'a Module, Vec<&'a Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    fn connect<'a>(s: &mut State<'a>, v: &'a Module) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in &s.next[v] {
            if !s.index.contains_key(w) {
                connect(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        next: &next,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in next.keys() {
        if !s.index.contains_key(v) {
            connect(&mut s, v);
        }
    }
    s.found
}

/// Each cycle, with the paths that make it.
fn describe(edges: &Edges, cycles: &[Vec<Module>]) -> String {
    let mut out = String::new();
    for component in cycles {
        let names: Vec<String> = component.iter().map(name).collect();
        out.push_str(&format!("a cycle among {}:\n", names.join(", ")));
        for ((from, to), written) in edges {
            if component.contains(from) && component.contains(to) {
                out.push_str(&format!("  {} uses {} ({written})\n", name(from), name(to)));
            }
        }
    }
    out
}

#[test]
fn the_import_graph_of_src_has_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = graph(&src);
    // The check sees the imports it is about: config's top level reads each section, and the
    // pingora layer uses the pure modules.
    for (from, to) in [
        (&["config", "validate"][..], &["config", "cors"][..]),
        (&["proxy"], &["forwarded"]),
        (&["config", "types"], &["health"]),
    ] {
        let edge = (module(from), module(to));
        assert!(edges.contains_key(&edge), "{edge:?} not in {edges:#?}");
    }
    let found = cycles(&edges);
    assert!(found.is_empty(), "{}", describe(&edges, &found));
}

#[test]
fn a_cycle_is_found_and_named_through_re_exports_and_macros() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("config")).unwrap();
    let files = [
        ("lib.rs", "pub mod config;\npub mod retry;\n"),
        (
            "config/mod.rs",
            "mod cors;\nmod validate;\npub use validate::EACH;\npub fn load() { validate::validate() }\n",
        ),
        (
            "config/validate.rs",
            "pub(super) fn validate() { super::cors::cors() }\npub const EACH: u8 = 1;\n",
        ),
        (
            "config/cors.rs",
            "use super::EACH;\npub fn cors() { let _ = format!(\"{}\", crate::retry::MAX); }\n\
             #[cfg(test)]\nmod tests { use crate::retry::tests; }\n",
        ),
        (
            "retry.rs",
            "pub const MAX: usize = 64;\n#[cfg(test)]\nmod tests { use crate::config::load; }\n",
        ),
    ];
    for (file, text) in files {
        std::fs::write(src.join(file), text).unwrap();
    }
    let edges = graph(src);
    let found = cycles(&edges);
    assert_eq!(
        describe(&edges, &found),
        "a cycle among crate::config::cors, crate::config::validate:\n  \
         crate::config::cors uses crate::config::validate (super::EACH)\n  \
         crate::config::validate uses crate::config::cors (super::cors::cors)\n"
    );
    let cors_retry = (module(&["config", "cors"]), module(&["retry"]));
    assert!(edges.contains_key(&cors_retry), "macro arguments count");
    let retry_config = (module(&["retry"]), module(&["config"]));
    assert!(!edges.contains_key(&retry_config), "tests do not count");
    assert_eq!(edges.len(), 3, "{edges:#?}");
}

/// Every path a syntax tree names, as segments: in `use`s, in code, and in macro arguments.
#[derive(Default)]
struct Paths(BTreeSet<Vec<String>>);

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut bindings = Vec::new();
        use_bindings(&mut Vec::new(), &u.tree, &mut bindings);
        self.0.extend(bindings.into_iter().map(|(_, path)| path));
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.0
            .insert(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        syn::visit::visit_macro(self, m);
        let text = m.tokens.to_string();
        let words: Vec<&str> = text.split_whitespace().collect();
        for (i, pair) in words.windows(2).enumerate() {
            if pair[1] == "::" && (i == 0 || words[i - 1] != "::") {
                let segments = words[i..].iter().step_by(2);
                let segments =
                    segments.take_while(|w| w.chars().all(|c| c.is_alphanumeric() || c == '_'));
                self.0.insert(segments.map(|w| w.to_string()).collect());
            }
        }
    }
}

/// The helper modules of tests/common/ a test binary compiles, and those it uses.
struct Helpers {
    /// The helpers it lists in its `mod common { ... }`.
    listed: BTreeSet<String>,
    /// The helpers it names (`common::gateway::Spec`, `crate::common::tls`).
    named: BTreeSet<String>,
}

/// A test binary's [`Helpers`], `None` when it has no list of them; files a `#[path]` module of
/// the binary's brings in (tests/browser/harness.rs) count as the binary's.
fn helpers_of(file: &Path) -> Result<Option<Helpers>, String> {
    let ast = syn::parse_file(&std::fs::read_to_string(file).unwrap())
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
    let mut listed = None;
    let mut paths = Paths::default();
    for item in &ast.items {
        let syn::Item::Mod(m) = item else {
            paths.visit_item(item);
            continue;
        };
        match (&m.content, m.ident == "common") {
            (None, true) => {
                return Err("declares `mod common;`, which compiles every helper; list the ones it uses: #[path = \"common\"] pub mod common { pub mod gateway; ... }".to_owned());
            }
            (Some((_, items)), true) => {
                let names = items.iter().filter_map(|item| match item {
                    syn::Item::Mod(m) => Some(m.ident.to_string()),
                    _ => None,
                });
                listed = Some(names.collect::<BTreeSet<_>>());
            }
            (None, false) => {
                let path = m.attrs.iter().find(|a| a.path().is_ident("path"));
                let value = path.and_then(|a| match &a.meta {
                    syn::Meta::NameValue(nv) => match &nv.value {
                        syn::Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Str(s),
                            ..
                        }) => Some(s.value()),
                        _ => None,
                    },
                    _ => None,
                });
                if let Some(value) = value {
                    let text = std::fs::read_to_string(file.parent().unwrap().join(value)).unwrap();
                    paths.visit_file(&syn::parse_file(&text).unwrap());
                }
            }
            (Some(_), false) => paths.visit_item(item),
        }
    }
    let Some(listed) = listed else {
        return Ok(None);
    };
    let named = paths.0.iter().filter_map(|path| {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let start = path
            .iter()
            .position(|s| !["crate", "super", "self"].contains(s))?;
        match path[start..] {
            ["common", helper, ..] => Some(helper.to_owned()),
            _ => None,
        }
    });
    let named = named.collect();
    Ok(Some(Helpers { listed, named }))
}

#[test]
fn each_test_binary_compiles_only_the_helpers_it_uses() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    // Which helpers each helper uses (`super::client`).
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(tests.join("common")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let used = text.split("super::").skip(1).map(|rest| {
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'));
            rest[..end.unwrap_or(rest.len())].to_owned()
        });
        uses.insert(name, used.collect());
    }
    let mut problems = Vec::new();
    let mut binaries = 0;
    for entry in std::fs::read_dir(&tests).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let Helpers { listed, named } = match helpers_of(&file) {
            Err(problem) => {
                problems.push(format!("tests/{name} {problem}"));
                continue;
            }
            Ok(None) => continue,
            Ok(Some(helpers)) => helpers,
        };
        binaries += 1;
        // What the binary names, and what those helpers use in turn.
        let mut needed = named;
        loop {
            let more: BTreeSet<String> = needed
                .iter()
                .flat_map(|h| uses.get(h).into_iter().flatten().cloned())
                .collect();
            if more.is_subset(&needed) {
                break;
            }
            needed.extend(more);
        }
        for helper in listed.difference(&needed) {
            problems.push(format!("tests/{name} compiles tests/common/{helper}.rs but uses nothing from it; remove `pub mod {helper};`"));
        }
    }
    assert!(
        binaries >= 15,
        "only {binaries} test binaries list their helpers"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
