//! A forgiving walk over a YAML tree: it records every shape problem (unknown key, wrong type)
//! with its key path and keeps going, so one run reports them all.

use serde_yaml::{Mapping, Value};

use std::cell::RefCell;

use super::diag::{Diagnostic, Diagnostics, Severity, Source, did_you_mean};

/// A value read from the file, with the key path it was found at.
#[derive(Clone, Debug, PartialEq)]
pub struct Keyed<T> {
    /// The key path, such as `cors.allowed_origins[2]`.
    pub key: String,
    /// The value.
    pub value: T,
}

/// A check of values already read, run when its turn comes, so that problems of meaning keep
/// their order while each section is still read in one function.
pub type Later<T> = Box<dyn FnOnce(&mut Problems) -> Option<T>>;

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
    found: Vec<(Phase, u64, Diagnostic)>,
    next: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Shape,
    Meaning,
}

impl Problems {
    /// No problems yet, from `source`.
    pub fn new(source: Source) -> Self {
        Problems {
            source,
            found: Vec::new(),
            next: 0,
        }
    }

    /// Where the values come from: the file, or an environment variable.
    pub fn source(&self) -> &Source {
        &self.source
    }

    fn mark(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn push(
        &mut self,
        phase: Phase,
        at: u64,
        severity: Severity,
        source: &Source,
        key: &str,
        message: String,
    ) {
        self.found.push((
            phase,
            at,
            Diagnostic {
                severity,
                source: source.clone(),
                key: key.to_owned(),
                message,
            },
        ));
    }

    fn shape_at(&mut self, at: u64, key: &str, message: String) {
        let source = self.source.clone();
        self.push(Phase::Shape, at, Severity::Error, &source, key, message);
    }

    /// Records an error of meaning at a key path.
    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        let source = self.source.clone();
        self.error_in(&source, key, message);
    }

    /// Records a warning at a key path.
    pub fn warning(&mut self, key: &str, message: impl Into<String>) {
        let source = self.source.clone();
        self.warning_in(&source, key, message);
    }

    /// Records an error of meaning in another source, such as an environment variable.
    pub fn error_in(&mut self, source: &Source, key: &str, message: impl Into<String>) {
        let at = self.mark();
        self.push(
            Phase::Meaning,
            at,
            Severity::Error,
            source,
            key,
            message.into(),
        );
    }

    /// Records a warning in another source.
    pub fn warning_in(&mut self, source: &Source, key: &str, message: impl Into<String>) {
        let at = self.mark();
        self.push(
            Phase::Meaning,
            at,
            Severity::Warning,
            source,
            key,
            message.into(),
        );
    }

    /// Records a shape error (a value of the wrong kind), printed before errors of meaning.
    fn shape(&mut self, key: &str, message: String) {
        let at = self.mark();
        self.shape_at(at, key, message);
    }

    /// Records a wrong-type error: `found <value>; write <expected>`.
    pub fn wrong_type(&mut self, key: &str, found: &Value, expected: &str) {
        self.shape(key, format!("found {}; write {expected}", describe(found)));
    }

    /// Whether any error (not just warnings) was recorded.
    pub fn has_errors(&self) -> bool {
        self.found
            .iter()
            .any(|(_, _, d)| d.severity == Severity::Error)
    }

    /// Every problem, shape problems first, each kind in the order found.
    pub fn into_diagnostics(mut self) -> Diagnostics {
        self.found.sort_by_key(|(phase, at, _)| (*phase, *at));
        let mut out = Diagnostics::new();
        for (_, _, d) in self.found {
            out.add(d);
        }
        out
    }
}

/// Describes a YAML value for a message: `"two"`, `42`, `a list`, `a mapping`, `nothing`.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let shown: String = s.chars().take(60).collect();
            if shown.len() < s.len() {
                format!("\"{shown}…\"")
            } else {
                format!("\"{shown}\"")
            }
        }
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping of keys".to_owned(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
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
    pub fn open(r: &mut Problems, path: &str, value: &'v Value, example: &str) -> Option<Self> {
        let Value::Mapping(map) = value else {
            r.wrong_type(path, value, example);
            return None;
        };
        Some(Section {
            path: path.to_owned(),
            map,
            opened: r.mark(),
            asked: RefCell::new(Vec::new()),
        })
    }

    /// Another reader of the same mapping, for keys that share it (pingora's at the top
    /// level); see [`Section::finish_with`].
    pub fn share(&self) -> Section<'v> {
        Section {
            path: self.path.clone(),
            map: self.map,
            opened: self.opened,
            asked: RefCell::new(Vec::new()),
        }
    }

    /// Finishes this section and one [`Section::share`]d from it: a key is unknown if neither
    /// was asked for it, and suggestions list this section's keys first.
    pub fn finish_with(self, r: &mut Problems, shared: Section<'v>) {
        self.asked.borrow_mut().extend(shared.into_asked());
        self.check(r);
    }

    /// The keys asked for, in the order first asked.
    pub fn into_asked(self) -> Vec<&'static str> {
        self.asked.into_inner()
    }

    /// Reports every key that was not asked for, as if when the section was opened.
    pub fn finish(self, r: &mut Problems) {
        self.check(r);
    }

    fn check(&self, r: &mut Problems) {
        let known = self.asked.borrow();
        for key in self.map.keys() {
            match key {
                Value::String(k) if known.contains(&k.as_str()) => {}
                Value::String(k) => {
                    let message = match did_you_mean(k, &known) {
                        Some(s) => format!("unknown key; did you mean \"{s}\"?"),
                        None => format!(
                            "unknown key; the keys allowed here are {}",
                            known.join(", ")
                        ),
                    };
                    r.shape_at(self.opened, &join(&self.path, k), message);
                }
                other => {
                    let message = format!(
                        "found the key {}; keys are names such as {}",
                        describe(other),
                        known.first().copied().unwrap_or_default()
                    );
                    r.shape_at(self.opened, &self.path, message);
                }
            }
        }
    }

    /// The path of this section.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The value at a known key, with its path. An explicit `null` counts as absent.
    pub fn get(&self, key: &'static str) -> Option<(String, &'v Value)> {
        {
            let mut asked = self.asked.borrow_mut();
            if !asked.contains(&key) {
                asked.push(key);
            }
        }
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some((join(&self.path, key), v)),
        }
    }

    /// A text value.
    pub fn text(
        &self,
        r: &mut Problems,
        key: &'static str,
        example: &str,
    ) -> Option<Keyed<String>> {
        let (path, v) = self.get(key)?;
        text(r, path, v, example)
    }

    /// A whole number.
    pub fn whole(&self, r: &mut Problems, key: &'static str, example: &str) -> Option<Keyed<u64>> {
        let (path, v) = self.get(key)?;
        whole(r, path, v, example)
    }

    /// A number of seconds, whole or fractional, greater than zero.
    pub fn seconds(
        &self,
        r: &mut Problems,
        key: &'static str,
        example: &str,
    ) -> Option<Keyed<f64>> {
        let (path, v) = self.get(key)?;
        match v.as_f64() {
            Some(s) if s > 0.0 && s.is_finite() => Some(Keyed {
                key: path,
                value: s,
            }),
            _ => {
                r.wrong_type(&path, v, example);
                None
            }
        }
    }

    /// `true` or `false`.
    pub fn flag(&self, r: &mut Problems, key: &'static str) -> Option<Keyed<bool>> {
        let (path, v) = self.get(key)?;
        match v {
            Value::Bool(b) => Some(Keyed {
                key: path,
                value: *b,
            }),
            _ => {
                r.wrong_type(&path, v, "true or false");
                None
            }
        }
    }

    /// A list of text items.
    pub fn texts(
        &self,
        r: &mut Problems,
        key: &'static str,
        example: &str,
    ) -> Option<Keyed<Vec<Keyed<String>>>> {
        let (path, v) = self.get(key)?;
        let Value::Sequence(items) = v else {
            r.wrong_type(&path, v, &format!("a list, such as {example}"));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(t) = text(r, format!("{path}[{i}]"), item, "text in quotes") {
                out.push(t);
            }
        }
        Some(Keyed {
            key: path,
            value: out,
        })
    }

    /// A mapping of text to text, such as response header names to values.
    pub fn text_map(
        &self,
        r: &mut Problems,
        key: &'static str,
        example: &str,
    ) -> Option<KeyedPairs> {
        let (path, v) = self.get(key)?;
        let Value::Mapping(map) = v else {
            r.wrong_type(&path, v, &format!("a mapping, such as {example}"));
            return None;
        };
        let mut out = Vec::with_capacity(map.len());
        for (k, val) in map {
            let Value::String(name) = k else {
                r.shape(
                    &path,
                    format!(
                        "found the key {}; write a name such as X-Frame-Options",
                        describe(k)
                    ),
                );
                continue;
            };
            let item = join(&path, name);
            match val {
                Value::String(s) => out.push(Keyed {
                    key: item,
                    value: (name.clone(), s.clone()),
                }),
                other => r.wrong_type(&item, other, "text in quotes, such as \"max-age=31536000\""),
            }
        }
        Some(Keyed {
            key: path,
            value: out,
        })
    }

    /// A list of mappings, each to be finished by the caller.
    pub fn sections(
        &self,
        r: &mut Problems,
        key: &'static str,
        example: &str,
    ) -> Option<Keyed<Vec<Section<'v>>>> {
        let (path, v) = self.get(key)?;
        let Value::Sequence(items) = v else {
            r.wrong_type(&path, v, &format!("a list, such as {example}"));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = Section::open(r, &format!("{path}[{i}]"), item, example) {
                out.push(s);
            }
        }
        Some(Keyed {
            key: path,
            value: out,
        })
    }

    /// A nested mapping, to be finished by the caller.
    pub fn section(
        &self,
        r: &mut Problems,
        key: &'static str,
        example: &str,
    ) -> Option<Section<'v>> {
        let (path, v) = self.get(key)?;
        Section::open(r, &path, v, example)
    }
}

fn text(r: &mut Problems, path: String, v: &Value, example: &str) -> Option<Keyed<String>> {
    match v {
        Value::String(s) => Some(Keyed {
            key: path,
            value: s.clone(),
        }),
        _ => {
            r.wrong_type(&path, v, example);
            None
        }
    }
}

fn whole(r: &mut Problems, path: String, v: &Value, example: &str) -> Option<Keyed<u64>> {
    match v.as_u64() {
        Some(n) => Some(Keyed {
            key: path,
            value: n,
        }),
        None => {
            r.wrong_type(&path, v, example);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_problems_come_first_and_unknown_keys_where_the_section_opened() {
        let doc: Value = serde_yaml::from_str("{a: 1, typo: 2, b: x, c: {1: y}}").unwrap();
        let mut r = Problems::new(Source::File("f.yaml".into()));
        let s = Section::open(&mut r, "", &doc, "a mapping").unwrap();
        let a = s.whole(&mut r, "a", "a number");
        r.error("a", "is wrong in meaning");
        let _ = s.whole(&mut r, "b", "a number");
        let _ = s.text_map(&mut r, "c", "{X: y}");
        s.finish(&mut r);
        assert_eq!(a.map(|k| k.value), Some(1));
        let got: Vec<String> = r.into_diagnostics().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            got,
            [
                r#"error: f.yaml: typo: unknown key; the keys allowed here are a, b, c"#,
                r#"error: f.yaml: b: found "x"; write a number"#,
                "error: f.yaml: c: found the key 1; write a name such as X-Frame-Options",
                "error: f.yaml: a: is wrong in meaning",
            ]
        );
    }
}
