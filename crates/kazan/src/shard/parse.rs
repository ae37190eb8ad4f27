//! The `shardSelector` grammar: the CEL subset the server's parser accepts
//! (k8s.io/apiserver `pkg/sharding/parser.go`: the expression is parsed as CEL, never evaluated,
//! and its tree walked), with the server's wording for every refusal.

use std::{iter::Peekable, str::CharIndices};

use super::{HashRange, ShardKey, ShardSelector};

/// Why a `shardSelector` value is refused, worded as the API server words it (its 400 answer
/// carries the same text).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardSelectorError {
    /// Nothing but spaces.
    #[error("empty shard selector is not allowed; omit the parameter for unfiltered lists")]
    Empty,
    /// Not a CEL expression kazan can read (the server's message here is cel-go's own).
    #[error("CEL parse error: {0}")]
    Syntax(String),
    /// A function or operator other than `shardRange` and `||`.
    #[error("unsupported function {0:?}; only shardRange() and || are allowed")]
    UnsupportedFunction(String),
    /// A value where a call was expected.
    #[error("unexpected expression kind {0}; expected shardRange() call or || operator")]
    UnexpectedExpression(&'static str),
    /// `shardRange` with other than three arguments.
    #[error("shardRange() requires exactly 3 arguments, got {0}")]
    ArgumentCount(usize),
    /// A first argument that is not a field path.
    #[error(
        "shardRange() first argument: expected field path (e.g. object.metadata.uid), got expression kind {0}"
    )]
    NotAFieldPath(&'static str),
    /// A field the server cannot shard by.
    #[error("unsupported field path {0:?}; supported: object.metadata.uid, object.metadata.namespace")]
    UnsupportedField(String),
    /// A bound that is not a literal.
    #[error("{name} must be a string literal (e.g. '0xff'), got expression kind {kind}")]
    BoundNotALiteral {
        /// `hexStart` or `hexEnd`.
        name: &'static str,
        /// The expression's kind.
        kind: &'static str,
    },
    /// A bound that is a literal of another type (`0x10` without quotes is a CEL integer).
    #[error("{name} must be a string literal, got {ty}")]
    BoundNotAString {
        /// `hexStart` or `hexEnd`.
        name: &'static str,
        /// The literal's Go type.
        ty: &'static str,
    },
    /// A bound without `0x`.
    #[error("{name} must have '0x' prefix, got {value:?}")]
    NoHexPrefix {
        /// `hexStart` or `hexEnd`.
        name: &'static str,
        /// The bound.
        value: String,
    },
    /// `'0x'` alone.
    #[error("{name}: hex value is required after '0x'")]
    NoHexDigits {
        /// `hexStart` or `hexEnd`.
        name: &'static str,
    },
    /// More than 17 digits.
    #[error("{name}: hex value too long ({len} chars, max 17): {digits:?}")]
    TooLong {
        /// `hexStart` or `hexEnd`.
        name: &'static str,
        /// How many digits.
        len: usize,
        /// The digits.
        digits: String,
    },
    /// A character other than `0-9a-f` (upper case is refused).
    #[error("{name}: invalid hex character {character:?} in {value:?}")]
    InvalidHexCharacter {
        /// `hexStart` or `hexEnd`.
        name: &'static str,
        /// The character.
        character: String,
        /// The bound.
        value: String,
    },
    /// Seventeen digits that are not 2⁶⁴.
    #[error("{name}: 17-digit hex value must be '0x10000000000000000' (2^64), got {value:?}")]
    SeventeenDigits {
        /// `hexStart` or `hexEnd`.
        name: &'static str,
        /// The bound.
        value: String,
    },
    /// Fewer than 16 digits.
    #[error("{name} must be a 0x-prefixed 16-digit hex value, got {value:?} (did you mean {padded:?}?)")]
    NotSixteenDigits {
        /// `hexStart` or `hexEnd`.
        name: &'static str,
        /// The bound.
        value: String,
        /// The same value with 16 digits.
        padded: String,
    },
    /// `start >= end`.
    #[error("shard range start {start} must be less than end {end}")]
    StartNotBeforeEnd {
        /// The start, as written.
        start: String,
        /// The end, as written.
        end: String,
    },
    /// Ranges on different fields.
    #[error("all shard ranges must use the same field, got {0:?} and {1:?}")]
    MixedFields(String, String),
}

type Error = ShardSelectorError;

/// A parsed expression: what of CEL's tree the walk looks at.
#[derive(Debug)]
enum Expr {
    /// A call or operator (`_||_`, `_&&_`), by its CEL function name.
    Call(String, Vec<Expr>),
    /// An identifier or a chain of field selections, dot-joined.
    Path(String),
    /// A string literal's value.
    Str(String),
    /// Another literal: its Go type as cel-go reports it.
    Literal(&'static str),
}

impl Expr {
    /// cel-go's name for the kind of expression.
    fn kind(&self) -> &'static str {
        match self {
            Expr::Call(..) => "CallKind",
            Expr::Path(p) if p.contains('.') => "SelectKind",
            Expr::Path(_) => "IdentKind",
            Expr::Str(_) | Expr::Literal(_) => "LiteralKind",
        }
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Dot,
    Open,
    Close,
    Comma,
    Or,
    And,
    Str(String),
    Int,
    Bool,
}

fn syntax(message: impl Into<String>) -> Error {
    Error::Syntax(message.into())
}

fn tokens(text: &str) -> Result<Vec<Token>, Error> {
    let mut out = Vec::new();
    let mut chars: Peekable<CharIndices<'_>> = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '.' => out.push(Token::Dot),
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            ',' => out.push(Token::Comma),
            '|' | '&' => {
                if chars.next_if(|(_, n)| *n == c).is_none() {
                    return Err(syntax(format!("unexpected {c:?} at {at}: did you mean {c}{c}?")));
                }
                out.push(if c == '|' { Token::Or } else { Token::And });
            }
            '\'' | '"' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err(syntax(format!("unterminated string starting at {at}"))),
                        Some((_, '\\')) => {
                            return Err(syntax(format!(
                                "escape sequences are not supported in a shard selector (string at {at})"
                            )));
                        }
                        Some((_, q)) if q == c => break,
                        Some((_, other)) => value.push(other),
                    }
                }
                out.push(Token::Str(value));
            }
            c if c.is_ascii_digit() => {
                while chars.next_if(|(_, n)| n.is_ascii_alphanumeric()).is_some() {}
                out.push(Token::Int);
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut ident = String::from(c);
                while let Some((_, n)) = chars.next_if(|(_, n)| n.is_ascii_alphanumeric() || *n == '_') {
                    ident.push(n);
                }
                // A quote right after `r` or `b` opens a raw or bytes literal in CEL.
                if matches!(chars.peek(), Some((_, '\'' | '"'))) {
                    return Err(syntax(format!(
                        "{ident}-prefixed string literals are not supported (at {at})"
                    )));
                }
                match ident.as_str() {
                    "true" | "false" => out.push(Token::Bool),
                    _ => out.push(Token::Ident(ident)),
                }
            }
            other => return Err(syntax(format!("unexpected character {other:?} at {at}"))),
        }
    }
    Ok(out)
}

/// A recursive-descent parser over the tokens, with CEL's precedence (`&&` binds tighter than
/// `||`, both left-associative).
struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self
            .tokens
            .get_mut(self.at)
            .map(|t| std::mem::replace(t, Token::Comma));
        self.at += 1;
        token
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), Error> {
        match self.next() {
            Some(t) if t == token => Ok(()),
            Some(t) => Err(syntax(format!("expected {what}, found {t:?}"))),
            None => Err(syntax(format!("expected {what}, found the end"))),
        }
    }

    fn or(&mut self) -> Result<Expr, Error> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            let right = self.and()?;
            left = Expr::Call("_||_".into(), vec![left, right]);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, Error> {
        let mut left = self.primary()?;
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            let right = self.primary()?;
            left = Expr::Call("_&&_".into(), vec![left, right]);
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, Error> {
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or()?;
                self.expect(Token::Close, "')'")?;
                Ok(inner)
            }
            Some(Token::Str(s)) => Ok(Expr::Str(s)),
            Some(Token::Int) => Ok(Expr::Literal("int64")),
            Some(Token::Bool) => Ok(Expr::Literal("bool")),
            Some(Token::Ident(first)) => {
                let mut path = first;
                while self.peek() == Some(&Token::Dot) {
                    self.at += 1;
                    match self.next() {
                        Some(Token::Ident(field)) => {
                            path.push('.');
                            path.push_str(&field);
                        }
                        _ => return Err(syntax("expected a field name after '.'")),
                    }
                }
                if self.peek() != Some(&Token::Open) {
                    return Ok(Expr::Path(path));
                }
                self.at += 1;
                let mut args = Vec::new();
                if self.peek() == Some(&Token::Close) {
                    self.at += 1;
                } else {
                    loop {
                        args.push(self.or()?);
                        match self.next() {
                            Some(Token::Comma) => {}
                            Some(Token::Close) => break,
                            _ => return Err(syntax("expected ',' or ')' in an argument list")),
                        }
                    }
                }
                // `a.f(x)` is a receiver-style call of `f` in CEL; the walk reads its name and
                // arguments only, as the server's does.
                let name = path.rsplit('.').next().unwrap_or(&path).to_string();
                Ok(Expr::Call(name, args))
            }
            Some(t) => Err(syntax(format!("unexpected {t:?}"))),
            None => Err(syntax("unexpected end of the expression")),
        }
    }
}

/// A range as written: field path and the two bounds, checked.
struct Requirement {
    path: String,
    key: ShardKey,
    start: String,
    end: String,
}

fn walk(expr: Expr, out: &mut Vec<Requirement>) -> Result<(), Error> {
    match expr {
        Expr::Call(name, args) if name == "_||_" => {
            for arg in args {
                walk(arg, out)?;
            }
            Ok(())
        }
        Expr::Call(name, args) if name == "shardRange" => {
            out.push(shard_range(args)?);
            Ok(())
        }
        Expr::Call(name, _) => Err(Error::UnsupportedFunction(name)),
        other => Err(Error::UnexpectedExpression(other.kind())),
    }
}

fn shard_range(args: Vec<Expr>) -> Result<Requirement, Error> {
    let count = args.len();
    let Ok([field, start, end]) = <[Expr; 3]>::try_from(args) else {
        return Err(Error::ArgumentCount(count));
    };
    let path = match field {
        Expr::Path(path) => path,
        other => return Err(Error::NotAFieldPath(other.kind())),
    };
    let key = ShardKey::from_path(&path).ok_or_else(|| Error::UnsupportedField(path.clone()))?;
    let start = hex_bound(start, "hexStart")?;
    let end = hex_bound(end, "hexEnd")?;
    // Canonical bounds: more digits is larger, then lexical order is numeric order.
    if start.len() > end.len() || (start.len() == end.len() && start >= end) {
        return Err(Error::StartNotBeforeEnd { start, end });
    }
    Ok(Requirement {
        path,
        key,
        start,
        end,
    })
}

fn hex_bound(expr: Expr, name: &'static str) -> Result<String, Error> {
    let value = match expr {
        Expr::Str(value) => value,
        Expr::Literal(ty) => return Err(Error::BoundNotAString { name, ty }),
        other => {
            return Err(Error::BoundNotALiteral {
                name,
                kind: other.kind(),
            });
        }
    };
    let Some(digits) = value.strip_prefix("0x") else {
        return Err(Error::NoHexPrefix { name, value });
    };
    if digits.is_empty() {
        return Err(Error::NoHexDigits { name });
    }
    let len = digits.chars().count();
    if len > 17 {
        return Err(Error::TooLong {
            name,
            len,
            digits: digits.to_string(),
        });
    }
    if let Some(bad) = digits.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(Error::InvalidHexCharacter {
            name,
            character: bad.to_string(),
            value,
        });
    }
    if len == 17 {
        if value != "0x10000000000000000" {
            return Err(Error::SeventeenDigits { name, value });
        }
    } else if len != 16 {
        let padded = format!("0x{digits:0>16}");
        return Err(Error::NotSixteenDigits { name, value, padded });
    }
    Ok(value)
}

/// The numeric value of a checked bound.
fn bound_value(bound: &str) -> Result<u128, Error> {
    let digits = bound.strip_prefix("0x").unwrap_or(bound);
    u128::from_str_radix(digits, 16).map_err(|e| syntax(format!("{bound}: {e}")))
}

pub(super) fn parse(selector: &str) -> Result<ShardSelector, Error> {
    let text = selector.trim();
    if text.is_empty() {
        return Err(Error::Empty);
    }
    let mut parser = Parser {
        tokens: tokens(text)?,
        at: 0,
    };
    let expr = parser.or()?;
    if let Some(extra) = parser.peek() {
        return Err(syntax(format!("unexpected {extra:?} after the expression")));
    }
    let mut requirements = Vec::new();
    walk(expr, &mut requirements)?;
    let Some(first) = requirements.first() else {
        return Err(Error::Empty);
    };
    let key = first.key;
    if let Some(other) = requirements.iter().find(|r| r.key != key) {
        return Err(Error::MixedFields(first.path.clone(), other.path.clone()));
    }
    let mut ranges = Vec::with_capacity(requirements.len());
    for r in &requirements {
        let start = bound_value(&r.start)?;
        let start = u64::try_from(start).map_err(|_| Error::StartNotBeforeEnd {
            start: r.start.clone(),
            end: r.end.clone(),
        })?;
        let range = HashRange::new(start, bound_value(&r.end)?).map_err(|_| Error::StartNotBeforeEnd {
            start: r.start.clone(),
            end: r.end.clone(),
        })?;
        ranges.push(range);
    }
    Ok(ShardSelector { key, ranges })
}
