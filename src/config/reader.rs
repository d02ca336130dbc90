//! A forgiving walk over a YAML tree: it records every shape problem (unknown key, wrong type)
//! with its key path and keeps going, so one run reports them all.

use serde_yaml::{Mapping, Value};

use super::diag::{Diagnostics, Origin, did_you_mean};

/// A value read from the file, with the key path it was found at.
#[derive(Clone, Debug, PartialEq)]
pub struct Keyed<T> {
    /// The key path, such as `cors.allowed_origins[2]`.
    pub key: String,
    /// The value.
    pub value: T,
}

/// A mapping of text to text as written, each pair with its key path.
pub type KeyedPairs = Keyed<Vec<Keyed<(String, String)>>>;

/// The problem sink and the place problems are attributed to.
pub struct Reader<'d> {
    /// Where the values come from.
    pub origin: Origin,
    /// Where problems go.
    pub diags: &'d mut Diagnostics,
}

impl Reader<'_> {
    /// Records an error at a key path.
    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        self.diags.error(&self.origin, key, message);
    }

    /// Records a warning at a key path.
    pub fn warning(&mut self, key: &str, message: impl Into<String>) {
        self.diags.warning(&self.origin, key, message);
    }

    /// Records a wrong-type error: `found <value>; write <expected>`.
    pub fn wrong_type(&mut self, key: &str, found: &Value, expected: &str) {
        let message = format!("found {}; write {expected}", describe(found));
        self.error(key, message);
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

/// A mapping whose keys have been checked against the known ones.
pub struct Section<'v> {
    path: String,
    map: &'v Mapping,
}

impl<'v> Section<'v> {
    /// Opens a mapping at `path`, reporting a wrong type and every unknown key.
    /// Returns `None` when the value is not a mapping.
    pub fn open(
        r: &mut Reader<'_>,
        path: &str,
        value: &'v Value,
        known: &[&'static str],
        example: &str,
    ) -> Option<Self> {
        let Value::Mapping(map) = value else {
            r.wrong_type(path, value, example);
            return None;
        };
        for key in map.keys() {
            match key {
                Value::String(k) if known.contains(&k.as_str()) => {}
                Value::String(k) => {
                    let message = match did_you_mean(k, known) {
                        Some(s) => format!("unknown key; did you mean \"{s}\"?"),
                        None => format!(
                            "unknown key; the keys allowed here are {}",
                            known.join(", ")
                        ),
                    };
                    r.error(&join(path, k), message);
                }
                other => {
                    r.error(
                        path,
                        format!(
                            "found the key {}; keys are names such as {}",
                            describe(other),
                            known[0]
                        ),
                    );
                }
            }
        }
        Some(Section {
            path: path.to_owned(),
            map,
        })
    }

    /// The path of this section.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The value at a known key, with its path. An explicit `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<(String, &'v Value)> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some((join(&self.path, key), v)),
        }
    }

    /// Whether the key is written at all, even as `null`.
    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// A text value.
    pub fn text(&self, r: &mut Reader<'_>, key: &str, example: &str) -> Option<Keyed<String>> {
        let (path, v) = self.get(key)?;
        text(r, path, v, example)
    }

    /// A whole number.
    pub fn whole(&self, r: &mut Reader<'_>, key: &str, example: &str) -> Option<Keyed<u64>> {
        let (path, v) = self.get(key)?;
        whole(r, path, v, example)
    }

    /// A number of seconds, whole or fractional, greater than zero.
    pub fn seconds(&self, r: &mut Reader<'_>, key: &str, example: &str) -> Option<Keyed<f64>> {
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
    pub fn flag(&self, r: &mut Reader<'_>, key: &str) -> Option<Keyed<bool>> {
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
        r: &mut Reader<'_>,
        key: &str,
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
    pub fn text_map(&self, r: &mut Reader<'_>, key: &str, example: &str) -> Option<KeyedPairs> {
        let (path, v) = self.get(key)?;
        let Value::Mapping(map) = v else {
            r.wrong_type(&path, v, &format!("a mapping, such as {example}"));
            return None;
        };
        let mut out = Vec::with_capacity(map.len());
        for (k, val) in map {
            let Value::String(name) = k else {
                r.error(
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

    /// A list of mappings, each opened with its own key check.
    pub fn sections(
        &self,
        r: &mut Reader<'_>,
        key: &str,
        known: &[&'static str],
        example: &str,
    ) -> Option<Keyed<Vec<Section<'v>>>> {
        let (path, v) = self.get(key)?;
        let Value::Sequence(items) = v else {
            r.wrong_type(&path, v, &format!("a list, such as {example}"));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = Section::open(r, &format!("{path}[{i}]"), item, known, example) {
                out.push(s);
            }
        }
        Some(Keyed {
            key: path,
            value: out,
        })
    }

    /// A nested mapping.
    pub fn section(
        &self,
        r: &mut Reader<'_>,
        key: &str,
        known: &[&'static str],
        example: &str,
    ) -> Option<Section<'v>> {
        let (path, v) = self.get(key)?;
        Section::open(r, &path, v, known, example)
    }
}

fn text(r: &mut Reader<'_>, path: String, v: &Value, example: &str) -> Option<Keyed<String>> {
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

fn whole(r: &mut Reader<'_>, path: String, v: &Value, example: &str) -> Option<Keyed<u64>> {
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
