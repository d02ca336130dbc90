//! Tracker writes in a `POST /api` body, read as Ackee 3.4.2's Apollo Server 3 reads them, and
//! the answer Ackee itself gives when it ignores the visit.
//!
//! A body is recognised only when every operation in it is a tracker write the gateway can
//! answer exactly as Ackee would: JSON (an object, or a non-empty array: Apollo's batch), each
//! operation a `query` text holding one `mutation` whose fields are `createRecord`,
//! `createAction`, `updateRecord` or `updateAction` (aliases allowed), selecting only
//! `success`, `payload { id }` and `__typename`. Anything else is not a tracker write and goes
//! to Ackee unchanged: a body that is not JSON, a persisted query (`extensions`: only Ackee
//! knows what a hash stands for, and a registration must reach its cache), fragments,
//! directives, variables sent as a string, another field, an `operationName` that names no
//! operation.
//!
//! When Ackee ignores a visit (its `ackee_ignore` cookie), its resolvers return `{success:
//! true, payload: {id: "88888888-8888-8888-8888-888888888888"}}` for a create and `{success:
//! true}` for an update, and Apollo shapes that by the query's selection, in its order, with
//! its aliases, written by `JSON.stringify` with a line end. [`Writes::answer`] writes the same.

use serde_json::{Map, Value};

/// The id Ackee gives a record or action it ignores; ackee-tracker stops on seeing it.
pub const FIXED_ID: &str = "88888888-8888-8888-8888-888888888888";

/// The deepest nesting of selections or values read; deeper is not a tracker write.
const MAX_DEPTH: usize = 16;

/// One of the four tracker mutations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// A page view.
    CreateRecord,
    /// A page view's duration, every 15 s.
    UpdateRecord,
    /// An event.
    CreateAction,
    /// An event's value.
    UpdateAction,
}

impl Mutation {
    fn named(name: &str) -> Option<Mutation> {
        Some(match name {
            "createRecord" => Mutation::CreateRecord,
            "updateRecord" => Mutation::UpdateRecord,
            "createAction" => Mutation::CreateAction,
            "updateAction" => Mutation::UpdateAction,
            _ => return None,
        })
    }

    /// Whether it creates a record or action (an update changes one).
    pub fn creates(self) -> bool {
        matches!(self, Mutation::CreateRecord | Mutation::CreateAction)
    }

    /// The GraphQL type of its result, for `__typename`.
    fn payload_type(self) -> &'static str {
        match self {
            Mutation::CreateRecord => "CreateRecordPayload",
            Mutation::UpdateRecord => "UpdateRecordPayload",
            Mutation::CreateAction => "CreateActionPayload",
            Mutation::UpdateAction => "UpdateActionPayload",
        }
    }

    /// The GraphQL type of a create's `payload`, for `__typename`.
    fn created_type(self) -> &'static str {
        match self {
            Mutation::CreateRecord | Mutation::UpdateRecord => "Record",
            Mutation::CreateAction | Mutation::UpdateAction => "Action",
        }
    }
}

/// A field of a payload's `payload`, by response key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Created {
    Id(String),
    Typename(String),
}

/// A field of a mutation's result, by response key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Selected {
    Success(String),
    Typename(String),
    Payload(String, Vec<Created>),
}

/// A field of the mutation itself, by response key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Root {
    Write {
        key: String,
        mutation: Mutation,
        /// An update of [`FIXED_ID`], which only an ignored visit has.
        fixed_id: bool,
        selection: Vec<Selected>,
    },
    Typename(String),
}

/// The tracker writes of a body: each operation's fields, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Writes {
    operations: Vec<Vec<Root>>,
    batch: bool,
}

impl Writes {
    /// The mutations, in order, each with whether it updates [`FIXED_ID`].
    pub fn mutations(&self) -> impl Iterator<Item = (Mutation, bool)> + '_ {
        self.operations.iter().flatten().filter_map(|r| match r {
            Root::Write {
                mutation, fixed_id, ..
            } => Some((*mutation, *fixed_id)),
            Root::Typename(_) => None,
        })
    }

    /// Ackee's answer for an ignored visit, as the body of a 200, or `None` if a write needs
    /// Ackee: a create when the visit is not `ignored`, an update of another id than
    /// [`FIXED_ID`].
    pub fn answer(&self, ignored: bool) -> Option<String> {
        let answerable = self
            .mutations()
            .all(|(m, fixed)| if m.creates() { ignored } else { fixed });
        if !answerable {
            return None;
        }
        let mut out = String::with_capacity(96 * self.operations.len());
        if self.batch {
            out.push('[');
        }
        for (i, op) in self.operations.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"data\":{");
            for (j, root) in op.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                write_root(&mut out, root);
            }
            out.push_str("}}");
        }
        if self.batch {
            out.push(']');
        }
        out.push('\n');
        Some(out)
    }
}

fn member(out: &mut String, key: &str) {
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
}

fn text(out: &mut String, key: &str, value: &str) {
    member(out, key);
    out.push('"');
    out.push_str(value);
    out.push('"');
}

fn write_root(out: &mut String, root: &Root) {
    let (key, mutation, selection) = match root {
        Root::Typename(key) => return text(out, key, "Mutation"),
        Root::Write {
            key,
            mutation,
            selection,
            ..
        } => (key, *mutation, selection),
    };
    member(out, key);
    out.push('{');
    for (i, field) in selection.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match field {
            Selected::Success(k) => {
                member(out, k);
                out.push_str("true");
            }
            Selected::Typename(k) => text(out, k, mutation.payload_type()),
            Selected::Payload(k, created) => {
                member(out, k);
                out.push('{');
                for (j, c) in created.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    match c {
                        Created::Id(k) => text(out, k, FIXED_ID),
                        Created::Typename(k) => text(out, k, mutation.created_type()),
                    }
                }
                out.push('}');
            }
        }
    }
    out.push('}');
}

/// The tracker writes in a body, or `None` if it is anything else (see the module's doc).
pub fn read(body: &[u8]) -> Option<Writes> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let (items, batch) = match &doc {
        Value::Array(items) if !items.is_empty() => (items.iter().collect::<Vec<_>>(), true),
        Value::Object(_) => (vec![&doc], false),
        _ => return None,
    };
    let operations = items
        .into_iter()
        .map(operation)
        .collect::<Option<Vec<_>>>()?;
    Some(Writes { operations, batch })
}

/// One operation of the body: its JSON members, then its query.
fn operation(v: &Value) -> Option<Vec<Root>> {
    let o = v.as_object()?;
    if o.get("extensions").is_some_and(|e| !e.is_null()) {
        return None;
    }
    let query = o.get("query")?.as_str()?;
    let wanted = match o.get("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return None,
    };
    let variables = match o.get("variables") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return None,
    };
    let op = parse(query)?;
    if wanted.is_some() && wanted != op.name {
        return None;
    }
    let mut keys = Vec::new();
    let mut roots = Vec::with_capacity(op.selection.len());
    for field in op.selection {
        keys.push(field.key);
        roots.push(root(field, variables)?);
    }
    let writes = roots.iter().any(|r| matches!(r, Root::Write { .. }));
    (writes && distinct(&keys)).then_some(roots)
}

fn distinct(keys: &[&str]) -> bool {
    keys.iter().enumerate().all(|(i, k)| !keys[..i].contains(k))
}

/// A field with neither arguments nor a selection: a leaf such as `id`.
fn is_leaf(f: &Field<'_>) -> bool {
    f.arguments.is_empty() && f.selection.is_none()
}

fn root(field: Field<'_>, variables: Option<&Map<String, Value>>) -> Option<Root> {
    if field.name == "__typename" && is_leaf(&field) {
        return Some(Root::Typename(field.key.to_owned()));
    }
    let mutation = Mutation::named(field.name)?;
    let selection = field.selection?;
    let fixed_id = field.arguments.iter().any(|(name, value)| {
        *name == "id"
            && match value {
                Argument::Variable(v) => variables
                    .and_then(|vars| vars.get(*v))
                    .is_some_and(|id| id.as_str() == Some(FIXED_ID)),
                Argument::Text(raw) => unescape(raw).as_deref() == Some(FIXED_ID),
                Argument::Other => false,
            }
    });
    let keys: Vec<&str> = selection.iter().map(|f| f.key).collect();
    if !distinct(&keys) {
        return None;
    }
    let selection = selection
        .into_iter()
        .map(|f| selected(f, mutation))
        .collect::<Option<Vec<_>>>()?;
    Some(Root::Write {
        key: field.key.to_owned(),
        mutation,
        fixed_id,
        selection,
    })
}

fn selected(f: Field<'_>, mutation: Mutation) -> Option<Selected> {
    let key = f.key.to_owned();
    match f.name {
        "success" if is_leaf(&f) => Some(Selected::Success(key)),
        "__typename" if is_leaf(&f) => Some(Selected::Typename(key)),
        "payload" if mutation.creates() && f.arguments.is_empty() => {
            let inner = f.selection?;
            let keys: Vec<&str> = inner.iter().map(|f| f.key).collect();
            if !distinct(&keys) {
                return None;
            }
            let created = inner
                .into_iter()
                .map(|c| match c.name {
                    "id" if is_leaf(&c) => Some(Created::Id(c.key.to_owned())),
                    "__typename" if is_leaf(&c) => Some(Created::Typename(c.key.to_owned())),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Selected::Payload(key, created))
        }
        _ => None,
    }
}

/// A GraphQL string's contents (without the quotes) decoded, or `None` if an escape is not
/// valid.
fn unescape(raw: &str) -> Option<String> {
    if !raw.contains('\\') {
        return Some(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                if hex.len() != 4 {
                    return None;
                }
                char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
            }
            _ => return None,
        });
    }
    Some(out)
}

// ---- GraphQL: a lexer and a parser for one mutation -------------------------------------------

/// A token of GraphQL's lexical grammar (the 2021 spec); ignored tokens are skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token<'a> {
    /// `! $ & ( ) : = @ [ ] { | }`
    Punct(u8),
    /// `...`
    Spread,
    Name(&'a str),
    Number,
    /// A string's contents between its quotes, escapes not decoded.
    Text(&'a str),
    /// A block string (`"""…"""`).
    Block,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// The next token, `Ok(None)` at the end, `Err` on text GraphQL does not allow.
    fn next(&mut self) -> Result<Option<Token<'a>>, ()> {
        let s = self.src.as_bytes();
        loop {
            match s.get(self.pos) {
                None => return Ok(None),
                Some(b' ' | b'\t' | b'\n' | b'\r' | b',') => self.pos += 1,
                Some(b'#') => {
                    while !matches!(s.get(self.pos), None | Some(b'\n' | b'\r')) {
                        self.pos += 1;
                    }
                }
                Some(0xEF) if s[self.pos..].starts_with("\u{feff}".as_bytes()) => self.pos += 3,
                Some(_) => break,
            }
        }
        let start = self.pos;
        let b = s[start];
        self.pos += 1;
        Ok(Some(match b {
            b'!' | b'$' | b'&' | b'(' | b')' | b':' | b'=' | b'@' | b'[' | b']' | b'{' | b'|'
            | b'}' => Token::Punct(b),
            b'.' if s[start..].starts_with(b"...") => {
                self.pos += 2;
                Token::Spread
            }
            b'_' | b'A'..=b'Z' | b'a'..=b'z' => {
                while s
                    .get(self.pos)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    self.pos += 1;
                }
                Token::Name(&self.src[start..self.pos])
            }
            b'-' | b'0'..=b'9' => {
                while s
                    .get(self.pos)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'-'))
                {
                    self.pos += 1;
                }
                Token::Number
            }
            b'"' if s[start..].starts_with(b"\"\"\"") => {
                self.pos = start + 3;
                loop {
                    match s.get(self.pos) {
                        None => return Err(()),
                        Some(b'\\') if s[self.pos..].starts_with(b"\\\"\"\"") => self.pos += 4,
                        Some(b'"') if s[self.pos..].starts_with(b"\"\"\"") => {
                            self.pos += 3;
                            break;
                        }
                        Some(_) => self.pos += 1,
                    }
                }
                Token::Block
            }
            b'"' => {
                loop {
                    match s.get(self.pos) {
                        None | Some(b'\n' | b'\r') => return Err(()),
                        Some(b'\\') => self.pos += 2,
                        Some(b'"') => break,
                        Some(_) => self.pos += 1,
                    }
                }
                let text = self.src.get(start + 1..self.pos).ok_or(())?;
                self.pos += 1;
                Token::Text(text)
            }
            _ => return Err(()),
        }))
    }
}

/// An argument's value, as far as the gateway needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Argument<'a> {
    /// `$name`
    Variable(&'a str),
    /// A string, escapes not decoded.
    Text(&'a str),
    /// Anything else.
    Other,
}

/// A field of a selection set.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Field<'a> {
    /// The response key: the alias, or else the name.
    key: &'a str,
    name: &'a str,
    arguments: Vec<(&'a str, Argument<'a>)>,
    selection: Option<Vec<Field<'a>>>,
}

/// A document's one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Operation<'a> {
    name: Option<&'a str>,
    selection: Vec<Field<'a>>,
}

/// A document that is exactly one `mutation` of fields (no fragments, no directives), or
/// `None`.
fn parse(query: &str) -> Option<Operation<'_>> {
    let mut p = Parser {
        lexer: Lexer { src: query, pos: 0 },
        peeked: None,
    };
    if p.next()? != Some(Token::Name("mutation")) {
        return None;
    }
    let mut name = None;
    if let Some(Token::Name(n)) = p.peek()? {
        name = Some(n);
        p.next()?;
    }
    if p.peek()? == Some(Token::Punct(b'(')) {
        // The variable definitions: types and default values, which the answer does not use.
        p.next()?;
        p.skip_until_close(b')', 0)?;
    }
    let selection = p.selection_set(0)?;
    // Exactly one definition.
    p.next()?.is_none().then_some(Operation { name, selection })
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Option<Token<'a>>>,
}

impl<'a> Parser<'a> {
    fn next(&mut self) -> Option<Option<Token<'a>>> {
        match self.peeked.take() {
            Some(t) => Some(t),
            None => self.lexer.next().ok(),
        }
    }

    fn peek(&mut self) -> Option<Option<Token<'a>>> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next().ok()?);
        }
        self.peeked
    }

    /// `{ field+ }`
    fn selection_set(&mut self, depth: usize) -> Option<Vec<Field<'a>>> {
        if depth > MAX_DEPTH || self.next()? != Some(Token::Punct(b'{')) {
            return None;
        }
        let mut fields = Vec::new();
        loop {
            match self.next()? {
                Some(Token::Punct(b'}')) if !fields.is_empty() => return Some(fields),
                Some(Token::Name(first)) => fields.push(self.field(first, depth)?),
                // Fragments, an empty set, anything else.
                _ => return None,
            }
        }
    }

    /// `alias: name(arguments) { … }`, its first name already read.
    fn field(&mut self, first: &'a str, depth: usize) -> Option<Field<'a>> {
        let (key, name) = if self.peek()? == Some(Token::Punct(b':')) {
            self.next()?;
            match self.next()? {
                Some(Token::Name(name)) => (first, name),
                _ => return None,
            }
        } else {
            (first, first)
        };
        let mut arguments = Vec::new();
        if self.peek()? == Some(Token::Punct(b'(')) {
            self.next()?;
            loop {
                match self.next()? {
                    Some(Token::Punct(b')')) if !arguments.is_empty() => break,
                    Some(Token::Name(arg)) => {
                        if self.next()? != Some(Token::Punct(b':')) {
                            return None;
                        }
                        arguments.push((arg, self.value(depth)?));
                    }
                    _ => return None,
                }
            }
        }
        let selection = match self.peek()? {
            Some(Token::Punct(b'{')) => Some(self.selection_set(depth + 1)?),
            // A directive (@include, @skip) decides at Ackee whether the field exists.
            Some(Token::Punct(b'@')) => return None,
            _ => None,
        };
        Some(Field {
            key,
            name,
            arguments,
            selection,
        })
    }

    /// An argument's value.
    fn value(&mut self, depth: usize) -> Option<Argument<'a>> {
        Some(match self.next()? {
            Some(Token::Punct(b'$')) => match self.next()? {
                Some(Token::Name(v)) => Argument::Variable(v),
                _ => return None,
            },
            Some(Token::Text(t)) => Argument::Text(t),
            Some(Token::Name(_) | Token::Number | Token::Block) => Argument::Other,
            Some(Token::Punct(b'[')) => {
                self.skip_until_close(b']', depth + 1)?;
                Argument::Other
            }
            Some(Token::Punct(b'{')) => {
                self.skip_until_close(b'}', depth + 1)?;
                Argument::Other
            }
            _ => return None,
        })
    }

    /// Skips to the `close` that matches an opening already read, with what it holds.
    fn skip_until_close(&mut self, close: u8, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        loop {
            match self.next()? {
                None => return None,
                Some(Token::Punct(c)) if c == close => return Some(()),
                Some(Token::Punct(b'(')) => self.skip_until_close(b')', depth + 1)?,
                Some(Token::Punct(b'[')) => self.skip_until_close(b']', depth + 1)?,
                Some(Token::Punct(b'{')) => self.skip_until_close(b'}', depth + 1)?,
                Some(Token::Punct(b')' | b']' | b'}')) => return None,
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// ackee-tracker 5.1.3's four bodies, as `JSON.stringify` writes them.
    pub(crate) fn tracker_body(mutation: &str, id: &str) -> String {
        let query = match mutation {
            "createRecord" => {
                "\n\t\t\tmutation createRecord($domainId: ID!, $input: CreateRecordInput!) {\n\t\t\t\tcreateRecord(domainId: $domainId, input: $input) {\n\t\t\t\t\tpayload {\n\t\t\t\t\t\tid\n\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t}\n\t\t"
            }
            "updateRecord" => {
                "\n\t\t\tmutation updateRecord($recordId: ID!) {\n\t\t\t\tupdateRecord(id: $recordId) {\n\t\t\t\t\tsuccess\n\t\t\t\t}\n\t\t\t}\n\t\t"
            }
            "createAction" => {
                "\n\t\t\tmutation createAction($eventId: ID!, $input: CreateActionInput!) {\n\t\t\t\tcreateAction(eventId: $eventId, input: $input) {\n\t\t\t\t\tpayload {\n\t\t\t\t\t\tid\n\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t}\n\t\t"
            }
            "updateAction" => {
                "\n\t\t\tmutation updateAction($actionId: ID!, $input: UpdateActionInput!) {\n\t\t\t\tupdateAction(id: $actionId, input: $input) {\n\t\t\t\t\tsuccess\n\t\t\t\t}\n\t\t\t}\n\t\t"
            }
            other => panic!("{other}"),
        };
        let variables = match mutation {
            "createRecord" => {
                serde_json::json!({"domainId": id, "input": {"siteLocation": "https://example.com/", "siteReferrer": null}})
            }
            "updateRecord" => serde_json::json!({"recordId": id}),
            "createAction" => {
                serde_json::json!({"eventId": id, "input": {"key": "Click", "value": 1}})
            }
            _ => serde_json::json!({"actionId": id, "input": {"key": "Click", "value": 2}}),
        };
        serde_json::json!({"query": query, "variables": variables}).to_string()
    }

    const DOMAIN: &str = "d0000000-0000-4000-8000-000000000001";
    const RECORD: &str = "00000000-0000-4000-8000-000000000001";

    fn answer(body: &str, ignored: bool) -> Option<String> {
        read(body.as_bytes()).and_then(|w| w.answer(ignored))
    }

    #[test]
    fn the_trackers_writes_get_ackees_answers_for_an_ignored_visit() {
        let create_record = r#"{"data":{"createRecord":{"payload":{"id":"88888888-8888-8888-8888-888888888888"}}}}
"#;
        let create_action = r#"{"data":{"createAction":{"payload":{"id":"88888888-8888-8888-8888-888888888888"}}}}
"#;
        // (body, ignored, answer): None means "Ackee answers".
        let cases: &[(String, bool, Option<&str>)] = &[
            (
                tracker_body("createRecord", DOMAIN),
                true,
                Some(create_record),
            ),
            (tracker_body("createRecord", DOMAIN), false, None),
            (
                tracker_body("createAction", DOMAIN),
                true,
                Some(create_action),
            ),
            (tracker_body("createAction", DOMAIN), false, None),
            (
                tracker_body("updateRecord", FIXED_ID),
                false,
                Some("{\"data\":{\"updateRecord\":{\"success\":true}}}\n"),
            ),
            (
                tracker_body("updateAction", FIXED_ID),
                true,
                Some("{\"data\":{\"updateAction\":{\"success\":true}}}\n"),
            ),
            (tracker_body("updateRecord", RECORD), false, None),
            (tracker_body("updateRecord", RECORD), true, None),
            (tracker_body("updateAction", RECORD), true, None),
        ];
        for (body, ignored, want) in cases {
            assert_eq!(
                answer(body, *ignored).as_deref(),
                *want,
                "{body} ignored={ignored}"
            );
        }
    }

    #[test]
    fn aliases_selections_and_batches_are_answered_as_apollo_shapes_them() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"query":"mutation { a: createRecord(domainId: \"d\", input: {siteLocation: \"https://x/\"}) { __typename ok: success payload { __typename theId: id } } }"}"#,
                Some(
                    r#"{"data":{"a":{"__typename":"CreateRecordPayload","ok":true,"payload":{"__typename":"Record","theId":"88888888-8888-8888-8888-888888888888"}}}}"#,
                ),
            ),
            (
                r#"{"query":"mutation Two { __typename createRecord(domainId: $d, input: $i) { payload { id } } b: createAction(eventId: $e, input: $i) { success } }","operationName":"Two"}"#,
                Some(
                    r#"{"data":{"__typename":"Mutation","createRecord":{"payload":{"id":"88888888-8888-8888-8888-888888888888"}},"b":{"success":true}}}"#,
                ),
            ),
            (
                r#"{"query":"mutation { updateRecord(id: \"88888888-8888-8888-8888-888888888888\") { success __typename } }"}"#,
                Some(
                    r#"{"data":{"updateRecord":{"success":true,"__typename":"UpdateRecordPayload"}}}"#,
                ),
            ),
            (
                r#"{"query":"mutation { updateRecord(id: \"\u0038\\u0038888888-8888-8888-8888-888888888888\") { success } }"}"#,
                Some(r#"{"data":{"updateRecord":{"success":true}}}"#),
            ),
            (
                r#"[{"query":"mutation { createRecord(domainId: $d, input: $i) { payload { id } } }"},{"query":"mutation { createAction(eventId: $e, input: $i) { payload { id } } }"}]"#,
                Some(
                    r#"[{"data":{"createRecord":{"payload":{"id":"88888888-8888-8888-8888-888888888888"}}}},{"data":{"createAction":{"payload":{"id":"88888888-8888-8888-8888-888888888888"}}}}]"#,
                ),
            ),
            (
                "{\"query\":\"# a comment\\nmutation{createRecord(domainId:$d,input:$i){payload{id}}}\",\"variables\":null,\"extensions\":null}",
                Some(
                    r#"{"data":{"createRecord":{"payload":{"id":"88888888-8888-8888-8888-888888888888"}}}}"#,
                ),
            ),
        ];
        for (body, want) in cases {
            let want = want.map(|w| format!("{w}\n"));
            assert_eq!(answer(body, true), want, "{body}");
        }
    }

    #[test]
    fn anything_else_goes_to_ackee_unchanged() {
        let cases: &[(&str, &str)] = &[
            ("not JSON", "a body that is not JSON"),
            ("", "an empty body"),
            ("[]", "an empty batch"),
            ("{}", "no query"),
            ("\"mutation\"", "a JSON string"),
            (r#"{"query":42}"#, "a query that is not text"),
            (
                r#"{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ab"}},"operationName":"createRecord","variables":{}}"#,
                "a persisted query: a hash only",
            ),
            (
                r#"{"query":"mutation { createRecord(domainId: $d, input: $i) { payload { id } } }","extensions":{"persistedQuery":{"version":1,"sha256Hash":"ab"}}}"#,
                "a persisted query's registration",
            ),
            (
                r#"{"query":"mutation { updateRecord(id: $r) { success } }","variables":"{\"r\":\"88888888-8888-8888-8888-888888888888\"}"}"#,
                "variables written as a string",
            ),
            (
                r#"{"query":"{ domains { id title } }"}"#,
                "a query (the dashboard's)",
            ),
            (
                r#"{"query":"query { __typename }"}"#,
                "explain's harmless query",
            ),
            (
                r#"{"query":"mutation createToken($input: CreateTokenInput!) { createToken(input: $input) { payload { id } } }"}"#,
                "a login",
            ),
            (
                r#"{"query":"mutation { createRecord(domainId: $d, input: $i) { payload { id } } createToken(input: $x) { payload { id } } }"}"#,
                "a login beside a tracker write",
            ),
            (
                r#"[{"query":"mutation { createRecord(domainId: $d, input: $i) { payload { id } } }"},{"query":"{ domains { id } }"}]"#,
                "a batch with something else",
            ),
            (
                r#"{"query":"mutation { createRecord(domainId: $d, input: $i) { payload { id siteLocation } } }"}"#,
                "a field Ackee has no value for when it ignores",
            ),
            (
                r#"{"query":"mutation { createRecord(domainId: $d, input: $i) { ...F } } fragment F on CreateRecordPayload { success }"}"#,
                "a fragment",
            ),
            (
                r#"{"query":"mutation { createRecord(domainId: $d, input: $i) @skip(if: true) { success } }"}"#,
                "a directive",
            ),
            (
                r#"{"query":"mutation A { createRecord(domainId: $d, input: $i) { success } }","operationName":"B"}"#,
                "an operationName that names no operation",
            ),
            (
                r#"{"query":"mutation A { createRecord(domainId: $d, input: $i) { success } } mutation B { createAction(eventId: $e, input: $i) { success } }","operationName":"A"}"#,
                "two operations",
            ),
            (
                r#"{"query":"mutation { createRecord(domainId: $d, input: $i) }"}"#,
                "no selection",
            ),
            (
                r#"{"query":"mutation { a: createRecord(domainId: $d, input: $i) { success } a: createAction(eventId: $e, input: $i) { success } }"}"#,
                "one response key twice",
            ),
            (
                r#"{"query":"mutation { createRecord(domainId: $d, input: $i) { success success } }"}"#,
                "a field twice",
            ),
            (
                r#"{"query":"mutation { updateRecord(id: $r) { payload { id } } }","variables":{"r":"88888888-8888-8888-8888-888888888888"}}"#,
                "an update has no payload",
            ),
            (
                r#"{"query":"mutation { createRecord(domainId: \"d) { success } }"}"#,
                "an unterminated string",
            ),
            (
                r#"{"query":"mutation { createRecord(domainId: $d, input: {a: [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}) { success } }"}"#,
                "values nested too deep",
            ),
        ];
        for (body, what) in cases {
            assert_eq!(answer(body, true), None, "{what}: {body}");
        }
    }

    #[test]
    fn an_update_counts_as_fixed_only_for_the_fixed_id() {
        let cases: &[(&str, bool)] = &[
            (
                r#"{"query":"mutation U($r: ID!) { updateAction(id: $r, input: $i) { success } }","variables":{"r":"88888888-8888-8888-8888-888888888888"}}"#,
                true,
            ),
            (
                r#"{"query":"mutation U($r: ID!) { updateAction(id: $r, input: $i) { success } }","variables":{"r":"88888888-8888-8888-8888-888888888889"}}"#,
                false,
            ),
            (
                r#"{"query":"mutation U($r: ID!) { updateAction(id: $r, input: $i) { success } }","variables":{}}"#,
                false,
            ),
            (
                r#"{"query":"mutation U($r: ID! = \"88888888-8888-8888-8888-888888888888\") { updateAction(id: $r, input: $i) { success } }"}"#,
                false,
            ),
            (
                r#"{"query":"mutation { updateAction(input: $i, id: 8) { success } }"}"#,
                false,
            ),
        ];
        for (body, fixed) in cases {
            let w = read(body.as_bytes()).unwrap_or_else(|| panic!("{body}"));
            assert_eq!(
                w.mutations().collect::<Vec<_>>(),
                [(Mutation::UpdateAction, *fixed)],
                "{body}"
            );
        }
    }

    #[test]
    fn no_body_makes_the_reader_panic_or_recurse_without_bound() {
        let deep = format!(
            r#"{{"query":"mutation {{ createRecord(domainId: $d, input: $i) {}{} }}"}}"#,
            "{ a ".repeat(5000),
            "}".repeat(5000)
        );
        assert_eq!(answer(&deep, true), None);
        let body = tracker_body("createRecord", DOMAIN);
        for i in 0..body.len() {
            let _ = answer(&body[..i], true);
            let _ = read(&body.as_bytes()[i..]);
        }
    }
}
