//! A forgiving walk over a YAML tree: it records every shape problem (unknown key, wrong type)
//! with its key path and keeps going, so one run reports them all.

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::Display;
use std::hash::Hash;
use std::ops::RangeInclusive;
use std::sync::OnceLock;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::diag::{Diagnostic, Diagnostics, Severity, Source, did_you_mean};

/// A key of a mapping, as the code names it.
pub type Key = &'static str;

/// A value read from the file, with the key path it was found at.
#[derive(Clone, Debug, PartialEq)]
pub struct Keyed<T> {
    /// The key path, such as `cors.allowed_origins[2]`.
    pub key: String,
    /// The value.
    pub value: T,
}

/// A value that may be missing, with the key path it is (or would be) at. Read with the rest of
/// its section and checked later, in its turn, so that problems keep the order they are found
/// in: [`Problems::needed`] says it is missing, or a check points at its key path.
pub type Wanted<T> = Keyed<Option<T>>;

impl<T> Wanted<T> {
    /// The value with its key path, if it is written (and of the right type).
    pub fn written(self) -> Option<Keyed<T>> {
        let key = self.key;
        self.value.map(|value| Keyed { key, value })
    }
}

/// A list of text items as written, each with its key path.
pub type Texts = Keyed<Vec<Keyed<String>>>;

/// A mapping of text to text as written, each pair with its key path.
pub type KeyedPairs = Keyed<Vec<Keyed<(String, String)>>>;

/// Where problems go, and the source they are attributed to. It reads nothing: [`Section`]
/// does the reading.
///
/// Shape problems (unknown keys, wrong types) are printed before problems of meaning, each kind
/// in the order it was found, and a section's unknown keys where the section was opened: so a
/// section can be read and validated in one function and still report in document order.
pub struct Problems {
    source: Source,
    /// Shape errors, each with the mark it is printed in the order of.
    shape: Vec<(u64, Diagnostic)>,
    /// Problems of meaning, in the order found.
    meaning: Vec<Diagnostic>,
    next: u64,
}

impl Problems {
    /// No problems yet, from `source`.
    pub fn new(source: Source) -> Self {
        Problems {
            source,
            shape: Vec::new(),
            meaning: Vec::new(),
            next: 0,
        }
    }

    fn mark(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// A problem at a key path, in `source` or else the file.
    fn problem(
        &self,
        severity: Severity,
        source: Option<&Source>,
        key: &str,
        message: String,
    ) -> Diagnostic {
        let source = source.unwrap_or(&self.source).clone();
        let key = key.to_owned();
        Diagnostic {
            severity,
            source,
            key,
            message,
        }
    }

    /// Records a problem of meaning, found now, in `source` (an environment variable) or else
    /// the file.
    pub fn add(&mut self, severity: Severity, source: Option<&Source>, key: &str, message: String) {
        let diagnostic = self.problem(severity, source, key, message);
        self.meaning.push(diagnostic);
    }

    /// Records a shape error, as if found at mark `at`.
    fn shape_at(&mut self, at: u64, key: &str, message: String) {
        let diagnostic = self.problem(Severity::Error, None, key, message);
        self.shape.push((at, diagnostic));
    }

    /// Records an error of meaning at a key path.
    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        self.add(Severity::Error, None, key, message.into());
    }

    /// Records an error of meaning at a key path, and gives no value: `return problems.fail(..)`.
    pub fn fail<T>(&mut self, key: &str, message: impl Into<String>) -> Option<T> {
        self.error(key, message);
        None
    }

    /// Records a warning at a key path.
    pub fn warning(&mut self, key: &str, message: impl Into<String>) {
        self.add(Severity::Warning, None, key, message.into());
    }

    /// Records the most common error of meaning: `found <found>; write <write>`.
    pub fn found(&mut self, key: &str, found: impl Display, write: impl Display) {
        self.error(key, format!("found {found}; write {write}"));
    }

    /// The value, or else its problem recorded as an error at `key`.
    pub fn ok<T>(&mut self, key: &str, result: Result<T, impl Into<String>>) -> Option<T> {
        result.map_err(|message| self.error(key, message)).ok()
    }

    /// The wanted value, or else an error at its key path: `missing; write <write>`. A value of
    /// the wrong type counts as missing too.
    pub fn needed<T>(&mut self, wanted: Wanted<T>, write: impl Display) -> Option<Keyed<T>> {
        if wanted.value.is_none() {
            self.error(&wanted.key, format!("missing; write {write}"));
        }
        wanted.written()
    }

    /// A whole number within `range`; outside it, an error that says what to write instead.
    pub fn within(
        &mut self,
        number: &Keyed<u64>,
        range: RangeInclusive<u64>,
        write: &str,
    ) -> Option<u64> {
        let inside = range.contains(&number.value).then_some(number.value);
        if inside.is_none() {
            self.found(&number.key, number.value, write);
        }
        inside
    }

    /// The value of one of a few words (trimmed), or `None` after an error for any other word.
    pub fn choice<T: Clone>(&mut self, written: &Keyed<String>, words: &[(&str, T)]) -> Option<T> {
        let word = written.value.trim();
        let known = words
            .iter()
            .find(|(choice, _)| *choice == word)
            .map(|(_, value)| value.clone());
        if known.is_none() {
            let names: Vec<&str> = words.iter().map(|(choice, _)| *choice).collect();
            let (last, rest) = names.split_last().expect("words to choose from");
            let write = format!("{} or {last}", rest.join(", "));
            self.found(&written.key, format!("\"{word}\""), write);
        }
        known
    }

    /// A wrong-type error, printed before errors of meaning: `found <value>; write <expected>`.
    /// Gives no value, like [`Problems::fail`].
    pub fn wrong_type<T>(&mut self, key: &str, found: &Value, expected: &str) -> Option<T> {
        let at = self.mark();
        let message = format!("found {}; write {expected}", describe(found));
        self.shape_at(at, key, message);
        None
    }

    /// Whether any error (not just warnings) was recorded.
    pub fn has_errors(&self) -> bool {
        !self.shape.is_empty() || self.errors() > 0
    }

    /// How many errors of meaning were recorded: a part read without adding any is valid.
    pub fn errors(&self) -> usize {
        let error = |diagnostic: &&Diagnostic| diagnostic.severity == Severity::Error;
        self.meaning.iter().filter(error).count()
    }

    /// Every problem, shape problems first, each kind in the order found.
    pub fn into_diagnostics(mut self) -> Diagnostics {
        self.shape.sort_by_key(|(at, _)| *at);
        let shape = self.shape.into_iter().map(|(_, diagnostic)| diagnostic);
        let items = shape.chain(self.meaning).collect();
        Diagnostics { items }
    }
}

/// Describes a YAML value for a message: `"two"`, `42`, `a list`, `a mapping`, `nothing`.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => {
            let shown: String = text.chars().take(60).collect();
            let cut = if shown.len() < text.len() { "…" } else { "" };
            format!("\"{shown}{cut}\"")
        }
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping of keys".to_owned(),
        Value::Tagged(tagged) => format!("a value tagged {}", tagged.tag),
    }
}

/// What part of the config has used so far (addresses, names, origins), each with the key
/// path that used it first, so that a second use can say where the first one is.
pub struct Seen<K>(HashMap<K, String>);

impl<K> Default for Seen<K> {
    fn default() -> Self {
        Seen(HashMap::new())
    }
}

impl<K: Hash + Eq> Seen<K> {
    /// The key path that first used `value`, if one did; else `at` is now its first user.
    pub fn first_use(&mut self, value: K, at: &str) -> Option<String> {
        match self.0.entry(value) {
            Entry::Occupied(first) => Some(first.get().clone()),
            Entry::Vacant(vacant) => {
                vacant.insert(at.to_owned());
                None
            }
        }
    }
}

/// Joins a parent path and a key.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// A mapping read key by key. It records the keys it was asked for, and [`Section::finish`]
/// reports every other key as unknown, with a suggestion when one looks like a typo.
#[must_use = "a section reports its unknown keys when it is finished"]
pub struct Section<'v> {
    path: String,
    map: &'v Mapping,
    opened: u64,
    asked: RefCell<Vec<&'static str>>,
}

impl<'v> Section<'v> {
    /// Opens a mapping at `path`, reporting a wrong type. Returns `None` when the value is not a
    /// mapping.
    pub fn open(
        problems: &mut Problems,
        path: &str,
        value: &'v Value,
        example: &str,
    ) -> Option<Self> {
        let Value::Mapping(map) = value else {
            return problems.wrong_type(path, value, example);
        };
        Some(Section::new(path.to_owned(), map, problems.mark()))
    }

    /// A section at `path` opened at mark `opened`, no key asked for yet.
    fn new(path: String, map: &'v Mapping, opened: u64) -> Self {
        let asked = RefCell::default();
        Section {
            path,
            map,
            opened,
            asked,
        }
    }

    /// Another reader of the same mapping, for keys that share it (pingora's at the top
    /// level); see [`Section::finish_with`].
    pub fn share(&self) -> Section<'v> {
        Section::new(self.path.clone(), self.map, self.opened)
    }

    /// Finishes this section and one [`Section::share`]d from it: a key is unknown if neither
    /// was asked for it, and suggestions list this section's keys first.
    pub fn finish_with(self, problems: &mut Problems, shared: Section<'v>) {
        self.asked.borrow_mut().extend(shared.into_asked());
        self.finish(problems);
    }

    /// The keys asked for, in the order first asked.
    pub fn into_asked(self) -> Vec<&'static str> {
        self.asked.into_inner()
    }

    /// Reports every key that was not asked for, as if when the section was opened.
    pub fn finish(self, problems: &mut Problems) {
        let known = self.asked.borrow();
        for key in self.map.keys() {
            match key {
                Value::String(key) if known.contains(&key.as_str()) => {}
                Value::String(key) => {
                    let message = match did_you_mean(key, &known) {
                        Some(suggestion) => format!("unknown key; did you mean \"{suggestion}\"?"),
                        None => format!(
                            "unknown key; the keys allowed here are {}",
                            known.join(", ")
                        ),
                    };
                    problems.shape_at(self.opened, &join(&self.path, key), message);
                }
                other => {
                    let message = format!(
                        "found the key {}; keys are names such as {}",
                        describe(other),
                        known.first().copied().unwrap_or_default()
                    );
                    problems.shape_at(self.opened, &self.path, message);
                }
            }
        }
    }

    /// The path of this section.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The value at a known key, with its path. An explicit `null` counts as absent.
    pub fn get(&self, key: Key) -> Option<(String, &'v Value)> {
        let mut asked = self.asked.borrow_mut();
        if !asked.contains(&key) {
            asked.push(key);
        }
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(value) => Some((join(&self.path, key), value)),
        }
    }

    /// The value at `key` as `read` takes it, or a wrong-type error naming `example`.
    pub fn read<T>(
        &self,
        problems: &mut Problems,
        key: Key,
        example: &str,
        read: impl FnOnce(&'v Value) -> Option<T>,
    ) -> Option<Keyed<T>> {
        let (path, value) = self.get(key)?;
        keyed(problems, path, value, example, read)
    }

    /// A text value.
    pub fn text(&self, problems: &mut Problems, key: Key, example: &str) -> Option<Keyed<String>> {
        self.read(problems, key, example, as_text)
    }

    /// The value at `key` as `reader` reads it (such as [`Section::text`]), with its key path
    /// whether it is written or not, for a check made later: see [`Wanted`].
    pub fn wanted<T>(
        &self,
        problems: &mut Problems,
        key: Key,
        example: &str,
        reader: impl FnOnce(&Self, &mut Problems, Key, &str) -> Option<Keyed<T>>,
    ) -> Wanted<T> {
        let value = reader(self, problems, key, example).map(|keyed| keyed.value);
        let key = join(&self.path, key);
        Keyed { key, value }
    }

    /// A whole number.
    pub fn whole(&self, problems: &mut Problems, key: Key, example: &str) -> Option<Keyed<u64>> {
        self.read(problems, key, example, Value::as_u64)
    }

    /// A number of seconds, whole or fractional, greater than zero; `default` is the example.
    pub fn duration(
        &self,
        problems: &mut Problems,
        key: Key,
        default: Duration,
    ) -> Option<Keyed<f64>> {
        let such_as = default.as_secs_f64();
        let example = format!("a number of seconds greater than 0, such as {such_as}");
        let positive = |seconds: &f64| *seconds > 0.0 && seconds.is_finite();
        self.read(problems, key, &example, |value| {
            value.as_f64().filter(positive)
        })
    }

    /// `true` or `false`.
    pub fn flag(&self, problems: &mut Problems, key: Key) -> Option<Keyed<bool>> {
        self.read(problems, key, "true or false", |value| match value {
            Value::Bool(flag) => Some(*flag),
            _ => None,
        })
    }

    /// A list, each item read by `item` with its own key path.
    fn list<T>(
        &self,
        problems: &mut Problems,
        key: Key,
        example: &str,
        mut item: impl FnMut(&mut Problems, String, &'v Value) -> Option<T>,
    ) -> Option<Keyed<Vec<T>>> {
        let (path, value) = self.get(key)?;
        let Value::Sequence(items) = value else {
            return problems.wrong_type(&path, value, &format!("a list, such as {example}"));
        };
        let value = items
            .iter()
            .enumerate()
            .filter_map(|(i, value)| item(problems, format!("{path}[{i}]"), value))
            .collect();
        Some(Keyed { key: path, value })
    }

    /// A list of text items.
    pub fn texts(&self, problems: &mut Problems, key: Key, example: &str) -> Option<Texts> {
        self.list(problems, key, example, |problems, path, value| {
            keyed(problems, path, value, "text in quotes", as_text)
        })
    }

    /// One text or a list of texts, as a list: a single text, or a list of one, is an item at
    /// the key itself, the items of a longer list are at `key[i]`. Anything else, or a list
    /// with anything but text in it, is one wrong-type error naming `example`.
    pub fn text_or_texts(&self, problems: &mut Problems, key: Key, example: &str) -> Option<Texts> {
        let (path, value) = self.get(key)?;
        let items: Option<Vec<String>> = match value {
            Value::String(text) => Some(vec![text.clone()]),
            Value::Sequence(items) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect(),
            _ => None,
        };
        let Some(items) = items else {
            return problems.wrong_type(&path, value, example);
        };
        let one = items.len() == 1;
        let items = items.into_iter().enumerate().map(|(item, value)| {
            let key = if one {
                path.clone()
            } else {
                format!("{path}[{item}]")
            };
            Keyed { key, value }
        });
        let value = items.collect();
        Some(Keyed { key: path, value })
    }

    /// A list of mappings, each to be finished by the caller.
    pub fn sections(
        &self,
        problems: &mut Problems,
        key: Key,
        example: &str,
    ) -> Option<Keyed<Vec<Section<'v>>>> {
        self.list(problems, key, example, |problems, path, value| {
            Section::open(problems, &path, value, example)
        })
    }

    /// A list of mappings that must have items: missing or empty is an error that says to write
    /// `what`, such as `example` (`missing_example` when it is missing).
    pub fn required_sections(
        &self,
        problems: &mut Problems,
        key: Key,
        what: &str,
        example: &str,
        missing_example: &str,
    ) -> Option<Keyed<Vec<Section<'v>>>> {
        let list = self.wanted(problems, key, example, Section::sections);
        let write = format!("{what}, such as {missing_example}");
        let list = problems.needed(list, write)?;
        if list.value.is_empty() {
            return problems.fail(
                &list.key,
                format!("is empty; write {what}, such as {example}"),
            );
        }
        Some(list)
    }

    /// A nested mapping, to be finished by the caller.
    pub fn section(&self, problems: &mut Problems, key: Key, example: &str) -> Option<Section<'v>> {
        let (path, value) = self.get(key)?;
        Section::open(problems, &path, value, example)
    }

    /// A nested mapping that must be written: missing is an error that says to write `write`.
    pub fn required_section(
        &self,
        problems: &mut Problems,
        key: Key,
        example: &str,
        write: impl Display,
    ) -> Option<Section<'v>> {
        let value = self.section(problems, key, example);
        let key = join(&self.path, key);
        problems
            .needed(Keyed { key, value }, write)
            .map(|section| section.value)
    }

    /// A nested mapping like [`Section::section`], or one without keys when it is absent or not
    /// a mapping, so that its keys can be read either way.
    pub fn section_or_empty(
        &self,
        problems: &mut Problems,
        key: Key,
        example: &str,
    ) -> Section<'v> {
        static NO_KEYS: OnceLock<Mapping> = OnceLock::new();
        let no_keys = || Section::new(join(&self.path, key), NO_KEYS.get_or_init(Mapping::new), 0);
        self.section(problems, key, example).unwrap_or_else(no_keys)
    }

    /// A mapping of text to text, such as response header names to values: `example` is one
    /// such mapping, `name_example` one of its keys and `value_example` one of its values.
    pub fn text_map(
        &self,
        problems: &mut Problems,
        key: Key,
        example: &str,
        name_example: &str,
        value_example: &str,
    ) -> Option<KeyedPairs> {
        let map = self.section(problems, key, &format!("a mapping, such as {example}"))?;
        let mut out = Vec::with_capacity(map.map.len());
        let value_example = format!("text in quotes, such as {value_example}");
        for (key, value) in map.map {
            let Value::String(name) = key else {
                let at = problems.mark();
                let found = describe(key);
                let message = format!("found the key {found}; write a name such as {name_example}");
                problems.shape_at(at, &map.path, message);
                continue;
            };
            let item = keyed(
                problems,
                join(&map.path, name),
                value,
                &value_example,
                as_text,
            );
            out.extend(item.map(|item| Keyed {
                key: item.key,
                value: (name.clone(), item.value),
            }));
        }
        Some(Keyed {
            key: map.path,
            value: out,
        })
    }
}

/// Text, and only text: a tagged value is not.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        _ => None,
    }
}

/// `v` as `read` takes it, with its path, or a wrong-type error naming `example`.
fn keyed<'written, T>(
    problems: &mut Problems,
    key: String,
    written: &'written Value,
    example: &str,
    read: impl FnOnce(&'written Value) -> Option<T>,
) -> Option<Keyed<T>> {
    let Some(value) = read(written) else {
        return problems.wrong_type(&key, written, example);
    };
    Some(Keyed { key, value })
}
