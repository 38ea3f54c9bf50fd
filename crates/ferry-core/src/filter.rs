//! The filter language of dynamic groups: which devices a group holds, as a predicate over
//! what a device reports.
//!
//! ```text
//! platform = "linux-x86_64" and attr.site = "osaka" and version(vpn-client) < "5.0"
//! id ~ "osaka-*" or (attr.rack in ("r1", "r2") and not config(vpn-client) exists)
//! last_contact_age > 30d
//! ```
//!
//! A filter is tests joined by `and`, `or` and `not` (in that order of precedence: `not`
//! binds tightest, `or` loosest), with parentheses. A test names a field and an operation:
//!
//! | field | what it is | operations |
//! |---|---|---|
//! | `id` | the device id | `=` `!=` `in` `~` `exists` |
//! | `platform` | the reported platform | `=` `!=` `in` `~` `exists` |
//! | `attr.NAME`, `attr."any name"` | a reported attribute | `=` `!=` `in` `~` `exists` |
//! | `version(PRODUCT)` | the installed software version | `=` `!=` `<` `<=` `>` `>=` `in` `exists` |
//! | `config(PRODUCT)` | the installed configuration version | as `version` |
//! | `last_contact_age` | time since the last check-in | `=` `!=` `<` `<=` `>` `>=` `exists` |
//!
//! Values are strings in double quotes (`\"`, `\\`, `\n`, `\t` and `\r` are the escapes),
//! except for `last_contact_age`, which takes a duration: a whole number and a unit `s`, `m`,
//! `h`, `d` or `w` (`last_contact_age < 7d`: seen within the last seven days). Versions compare
//! by rank as everywhere in Ferry (`"5.0" = "5"`). `~` matches a glob: `*` is any run of
//! characters, `?` one character. `is set` is another spelling of `exists`.
//!
//! A test on something the device does not have is false, whatever the operator: a device
//! with no installed `vpn-client` matches neither `version(vpn-client) < "5.0"` nor
//! `version(vpn-client) != "5.0"`, and a device that never checked in matches no
//! `last_contact_age` comparison. Ask for absence with `not ... exists`.
//!
//! [`Filter`]'s `Display` is a canonical form that parses back to the same filter.

use std::collections::BTreeMap;
use std::fmt;

use crate::device::Device;
use crate::names::ProductName;
use crate::version::Version;

/// Longest filter text accepted, in bytes.
pub const MAX_LEN: usize = 4096;
/// Deepest nesting of parentheses and `not` accepted.
pub const MAX_DEPTH: usize = 32;
/// Most tests one filter may hold.
pub const MAX_TERMS: usize = 256;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// All of these hold (at least two).
    And(Vec<Filter>),
    /// At least one of these holds (at least two).
    Or(Vec<Filter>),
    /// This does not hold.
    Not(Box<Filter>),
    /// One test of one field.
    Test(Test),
}

/// One test: a field and what is asked of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    /// What is tested.
    pub field: Field,
    /// How.
    pub op: Op,
}

/// What a test looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The device id.
    Id,
    /// The reported platform.
    Platform,
    /// A reported attribute, by name.
    Attr(String),
    /// The installed software version of a product.
    Version(ProductName),
    /// The installed configuration version of a product.
    Config(ProductName),
    /// Seconds since the last check-in.
    LastContactAge,
}

/// The operation of a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Compares with one value.
    Cmp(CmpOp, Value),
    /// Equals one of these values.
    In(Vec<Value>),
    /// Matches a glob (`*` any run of characters, `?` one character).
    Glob(String),
    /// The device has a value for the field.
    Exists,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }

    fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Self::Eq => ord == Equal,
            Self::Ne => ord != Equal,
            Self::Lt => ord == Less,
            Self::Le => ord != Greater,
            Self::Gt => ord == Greater,
            Self::Ge => ord != Less,
        }
    }
}

/// A literal value, typed by the field it is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Text, for `id`, `platform` and attributes.
    Text(String),
    /// A version, for `version(...)` and `config(...)`.
    Version(Version),
    /// A duration in seconds, for `last_contact_age`.
    Age(u64),
}

/// What a filter is evaluated against: the facts a device reports.
#[derive(Debug, Clone, Copy)]
pub struct DeviceView<'a> {
    /// The device id.
    pub id: &'a str,
    /// The reported platform.
    pub platform: Option<&'a str>,
    /// Reported attributes.
    pub attributes: &'a BTreeMap<String, String>,
    /// Installed software versions.
    pub installed: &'a BTreeMap<ProductName, Version>,
    /// Installed configuration versions.
    pub configs: &'a BTreeMap<ProductName, Version>,
    /// Unix seconds of the last check-in, if any.
    pub last_contact: Option<i64>,
}

impl<'a> From<&'a Device> for DeviceView<'a> {
    fn from(d: &'a Device) -> Self {
        Self {
            id: d.id.as_str(),
            platform: d.platform.as_ref().map(|p| p.as_str()),
            attributes: &d.attributes,
            installed: &d.installed,
            configs: &d.configs,
            last_contact: d.last_contact,
        }
    }
}

/// Why a filter text was refused: where, what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {column}: expected {expected}, found {found}")]
pub struct FilterError {
    /// Byte offset into the text.
    pub offset: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What would have been accepted there.
    pub expected: String,
    /// What was there, quoted, or `end of filter`.
    pub found: String,
}

impl Filter {
    /// Parses a filter text.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        if text.len() > MAX_LEN {
            let offset = floor_char_boundary(text, MAX_LEN);
            return Err(error_at(
                text,
                offset,
                format!("a filter of at most {MAX_LEN} bytes"),
                format!("{} bytes", text.len()),
            ));
        }
        let tokens = lex(text)?;
        let mut p = Parser { text, tokens, pos: 0, depth: 0, terms: 0 };
        let filter = p.or()?;
        match p.peek() {
            None => Ok(filter),
            Some(_) => Err(p.unexpected("`and`, `or` or the end of the filter")),
        }
    }

    /// Whether the device matches, `now` in unix seconds.
    pub fn matches(&self, device: &DeviceView<'_>, now: i64) -> bool {
        match self {
            Self::And(all) => all.iter().all(|f| f.matches(device, now)),
            Self::Or(any) => any.iter().any(|f| f.matches(device, now)),
            Self::Not(f) => !f.matches(device, now),
            Self::Test(t) => t.matches(device, now),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl Test {
    fn matches(&self, d: &DeviceView<'_>, now: i64) -> bool {
        match &self.field {
            Field::Id => text_matches(Some(d.id), &self.op),
            Field::Platform => text_matches(d.platform, &self.op),
            Field::Attr(name) => text_matches(d.attributes.get(name).map(String::as_str), &self.op),
            Field::Version(p) => version_matches(d.installed.get(p), &self.op),
            Field::Config(p) => version_matches(d.configs.get(p), &self.op),
            Field::LastContactAge => {
                let age = d.last_contact.map(|at| u64::try_from(now.saturating_sub(at)).unwrap_or(0));
                match (&self.op, age) {
                    (_, None) => false,
                    (Op::Exists, Some(_)) => true,
                    (Op::Cmp(op, Value::Age(limit)), Some(age)) => op.holds(age.cmp(limit)),
                    _ => false,
                }
            }
        }
    }
}

fn text_matches(have: Option<&str>, op: &Op) -> bool {
    let Some(have) = have else { return false };
    match op {
        Op::Exists => true,
        Op::Cmp(CmpOp::Eq, Value::Text(v)) => have == v,
        Op::Cmp(CmpOp::Ne, Value::Text(v)) => have != v,
        Op::In(values) => values.iter().any(|v| matches!(v, Value::Text(v) if v == have)),
        Op::Glob(pattern) => glob(pattern, have),
        _ => false,
    }
}

fn version_matches(have: Option<&Version>, op: &Op) -> bool {
    let Some(have) = have else { return false };
    match op {
        Op::Exists => true,
        Op::Cmp(op, Value::Version(v)) => op.holds(have.cmp_rank(v)),
        Op::In(values) => values.iter().any(|v| matches!(v, Value::Version(v) if have.cmp_rank(v).is_eq())),
        _ => false,
    }
}

/// Whether `text` matches `pattern`, where `*` is any run of characters and `?` one.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Greedy matching with one backtrack point: linear in practice, never exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

// ---- lexing ----

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(String),
    Sym(&'static str),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    offset: usize,
    /// The token as written, for error messages.
    raw_len: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn error_at(text: &str, offset: usize, expected: impl Into<String>, found: impl Into<String>) -> FilterError {
    let column = text[..offset].chars().count() + 1;
    FilterError { offset, column, expected: expected.into(), found: found.into() }
}

fn lex(text: &str) -> Result<Vec<Token>, FilterError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let tok = if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => {
                        return Err(error_at(text, text.len(), "a closing `\"`", "end of filter"));
                    }
                    Some((_, '"')) => break,
                    Some((at, '\\')) => match chars.next() {
                        Some((_, '"')) => s.push('"'),
                        Some((_, '\\')) => s.push('\\'),
                        Some((_, 'n')) => s.push('\n'),
                        Some((_, 't')) => s.push('\t'),
                        Some((_, 'r')) => s.push('\r'),
                        other => {
                            let found = other.map_or("end of filter".to_owned(), |(_, c)| format!("\"\\{c}\""));
                            return Err(error_at(text, at, "an escape (\\\" \\\\ \\n \\t \\r)", found));
                        }
                    },
                    Some((_, c)) => s.push(c),
                }
            }
            Tok::Str(s)
        } else if is_word_char(c) {
            let mut s = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if !is_word_char(c) {
                    break;
                }
                s.push(c);
                chars.next();
            }
            Tok::Word(s)
        } else {
            chars.next();
            let next = chars.peek().map(|&(_, c)| c);
            let sym = match (c, next) {
                ('!', Some('=')) | ('<', Some('=')) | ('>', Some('=')) => {
                    chars.next();
                    match c {
                        '!' => "!=",
                        '<' => "<=",
                        _ => ">=",
                    }
                }
                ('=', _) => "=",
                ('<', _) => "<",
                ('>', _) => ">",
                ('~', _) => "~",
                ('(', _) => "(",
                (')', _) => ")",
                (',', _) => ",",
                _ => {
                    return Err(error_at(
                        text,
                        start,
                        "a field, an operator, a quoted string or a parenthesis",
                        format!("\"{c}\""),
                    ))
                }
            };
            Tok::Sym(sym)
        };
        let end = chars.peek().map_or(text.len(), |&(i, _)| i);
        tokens.push(Token { tok, offset: start, raw_len: end - start });
    }
    Ok(tokens)
}

// ---- parsing ----

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    terms: usize,
}

const CMP_EXPECTED: &str = "a comparison operator (= != < <= > >= in)";

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.text.len(), |t| t.offset)
    }

    fn found(&self) -> String {
        match self.tokens.get(self.pos) {
            None => "end of filter".to_owned(),
            Some(t) => {
                let raw = &self.text[t.offset..t.offset + t.raw_len];
                let raw: String = raw.chars().take(40).collect();
                // A string shows as written, quotes included; anything else gets quotes.
                if raw.starts_with('"') {
                    raw
                } else {
                    format!("\"{raw}\"")
                }
            }
        }
    }

    fn unexpected(&self, expected: &str) -> FilterError {
        error_at(self.text, self.offset(), expected, self.found())
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Sym(x)) if *x == s)
    }

    fn expect_sym(&mut self, s: &str, expected: &str) -> Result<(), FilterError> {
        if self.is_sym(s) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn nest(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.unexpected(&format!("at most {MAX_DEPTH} levels of nesting")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut parts = vec![self.and()?];
        while self.is_word("or") {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.pop().expect("one part") } else { Filter::Or(parts) })
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut parts = vec![self.unary()?];
        while self.is_word("and") {
            self.pos += 1;
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 { parts.pop().expect("one part") } else { Filter::And(parts) })
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if self.is_word("not") {
            self.nest()?;
            self.pos += 1;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.is_sym("(") {
            self.nest()?;
            self.pos += 1;
            let inner = self.or()?;
            self.expect_sym(")", "`)`, `and` or `or`")?;
            self.depth -= 1;
            return Ok(inner);
        }
        let start = self.offset();
        let test = self.test()?;
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(error_at(self.text, start, format!("at most {MAX_TERMS} tests"), "another test"));
        }
        Ok(Filter::Test(test))
    }

    fn field(&mut self) -> Result<Field, FilterError> {
        const EXPECTED: &str =
            "a field (id, platform, attr.NAME, version(PRODUCT), config(PRODUCT), last_contact_age), `not` or `(`";
        let Some(Tok::Word(word)) = self.peek().cloned() else { return Err(self.unexpected(EXPECTED)) };
        let start = self.pos;
        self.pos += 1;
        match word.as_str() {
            "id" => Ok(Field::Id),
            "platform" => Ok(Field::Platform),
            "last_contact_age" => Ok(Field::LastContactAge),
            "version" | "config" => {
                self.expect_sym("(", "`(` and a product name")?;
                let Some(Tok::Word(product)) = self.peek().cloned() else {
                    return Err(self.unexpected("a product name"));
                };
                let product =
                    ProductName::new(product).map_err(|e| self.unexpected(&format!("a product name ({e})")))?;
                self.pos += 1;
                self.expect_sym(")", "`)`")?;
                Ok(if word == "version" { Field::Version(product) } else { Field::Config(product) })
            }
            "attr." => match self.peek().cloned() {
                Some(Tok::Str(name)) if !name.is_empty() => {
                    self.pos += 1;
                    Ok(Field::Attr(name))
                }
                _ => Err(self.unexpected("an attribute name")),
            },
            w if w.starts_with("attr.") => Ok(Field::Attr(w["attr.".len()..].to_owned())),
            _ => {
                self.pos = start;
                Err(self.unexpected(EXPECTED))
            }
        }
    }

    fn test(&mut self) -> Result<Test, FilterError> {
        let field = self.field()?;
        let ordered = matches!(field, Field::Version(_) | Field::Config(_) | Field::LastContactAge);
        let text = matches!(field, Field::Id | Field::Platform | Field::Attr(_));
        let op = match self.peek().cloned() {
            Some(Tok::Word(w)) if w == "exists" => {
                self.pos += 1;
                Op::Exists
            }
            Some(Tok::Word(w)) if w == "is" => {
                self.pos += 1;
                if !self.is_word("set") {
                    return Err(self.unexpected("`set` (as in `is set`)"));
                }
                self.pos += 1;
                Op::Exists
            }
            Some(Tok::Word(w)) if w == "in" && !matches!(field, Field::LastContactAge) => {
                self.pos += 1;
                self.expect_sym("(", "`(` and a list of values")?;
                let mut values = vec![self.value(&field)?];
                while self.is_sym(",") {
                    self.pos += 1;
                    values.push(self.value(&field)?);
                }
                self.expect_sym(")", "`,` or `)`")?;
                Op::In(values)
            }
            Some(Tok::Sym("~")) if text => {
                self.pos += 1;
                match self.peek().cloned() {
                    Some(Tok::Str(s)) => {
                        self.pos += 1;
                        Op::Glob(s)
                    }
                    _ => return Err(self.unexpected("a quoted glob pattern")),
                }
            }
            Some(Tok::Sym(s)) if matches!(s, "=" | "!=") || (ordered && matches!(s, "<" | "<=" | ">" | ">=")) => {
                self.pos += 1;
                let op = match s {
                    "=" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    ">" => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                Op::Cmp(op, self.value(&field)?)
            }
            _ => {
                let expected = match field {
                    Field::LastContactAge => "a comparison operator (= != < <= > >=) or `exists`",
                    Field::Version(_) | Field::Config(_) => "a comparison operator (= != < <= > >= in) or `exists`",
                    _ => "a comparison operator (= != in ~) or `exists`",
                };
                return Err(self.unexpected(if ordered || text { expected } else { CMP_EXPECTED }));
            }
        };
        Ok(Test { field, op })
    }

    fn value(&mut self, field: &Field) -> Result<Value, FilterError> {
        let tok = self.peek().cloned();
        let value = match (field, tok) {
            (Field::LastContactAge, Some(Tok::Word(w))) => match parse_duration(&w) {
                Some(secs) => Value::Age(secs),
                None => return Err(self.unexpected("a duration such as 30m, 12h, 7d or 2w")),
            },
            (Field::LastContactAge, _) => return Err(self.unexpected("a duration such as 30m, 12h, 7d or 2w")),
            (Field::Version(_) | Field::Config(_), Some(Tok::Str(s))) => match Version::new(s) {
                Ok(v) => Value::Version(v),
                Err(e) => return Err(self.unexpected(&format!("a version ({e})"))),
            },
            (_, Some(Tok::Str(s))) => Value::Text(s),
            _ => return Err(self.unexpected("a value in double quotes")),
        };
        self.pos += 1;
        Ok(value)
    }
}

const UNITS: [(char, u64); 5] = [('w', 7 * 86_400), ('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

fn parse_duration(w: &str) -> Option<u64> {
    let unit = w.chars().last()?;
    let (_, factor) = UNITS.iter().find(|(u, _)| *u == unit)?;
    let digits = &w[..w.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(*factor)
}

// ---- display ----

fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn child(f: &mut fmt::Formatter<'_>, c: &Filter) -> fmt::Result {
            match c {
                Filter::And(_) | Filter::Or(_) => write!(f, "({c})"),
                _ => write!(f, "{c}"),
            }
        }
        match self {
            Self::And(parts) | Self::Or(parts) => {
                let sep = if matches!(self, Self::And(_)) { " and " } else { " or " };
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    child(f, p)?;
                }
                Ok(())
            }
            Self::Not(inner) => {
                f.write_str("not ")?;
                child(f, inner)
            }
            Self::Test(t) => write!(f, "{t}"),
        }
    }
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Field::Id => f.write_str("id")?,
            Field::Platform => f.write_str("platform")?,
            Field::LastContactAge => f.write_str("last_contact_age")?,
            Field::Version(p) => write!(f, "version({p})")?,
            Field::Config(p) => write!(f, "config({p})")?,
            Field::Attr(name) => {
                if name.chars().all(is_word_char) {
                    write!(f, "attr.{name}")?;
                } else {
                    f.write_str("attr.")?;
                    write_quoted(f, name)?;
                }
            }
        }
        match &self.op {
            Op::Exists => f.write_str(" exists"),
            Op::Glob(p) => {
                f.write_str(" ~ ")?;
                write_quoted(f, p)
            }
            Op::Cmp(op, v) => write!(f, " {} {v}", op.as_str()),
            Op::In(values) => {
                f.write_str(" in (")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(s) => write_quoted(f, s),
            Self::Version(v) => write_quoted(f, v.as_str()),
            Self::Age(secs) => {
                let (unit, factor) =
                    UNITS.iter().find(|(_, factor)| *secs != 0 && secs % factor == 0).copied().unwrap_or(('s', 1));
                write!(f, "{}{unit}", secs / factor)
            }
        }
    }
}

#[cfg(test)]
mod tests;
