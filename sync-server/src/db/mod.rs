//! The one interface the server's storage speaks to its database, with two engines behind
//! it: SQLite (the embedded default, `sqlite.rs`) and PostgreSQL (`postgres.rs`). Every
//! query is written once, in the SQL both engines read: `?N` (or `?`) placeholders,
//! `ON CONFLICT`, `RETURNING`, `coalesce`; where they differ, `Dialect` says how.
//! Values cross the interface as `Value`s and rows come back whole, so that no engine's
//! types leak into the code above.

use crate::error::{AppError, AppResult};

pub mod postgres;
pub mod sqlite;

/// Prepared statements a connection keeps at most, on either engine. The write path alone
/// uses a few dozen; fewer would parse them again on every commit.
const STATEMENTS_KEPT: usize = 256;

/// How many rows `insert_rows` puts in one statement, largest first.
const INSERT_GROUPS: [usize; 6] = [32, 16, 8, 4, 2, 1];

/// Which SQL an engine reads, for the few places where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.
    Sqlite,
    /// PostgreSQL 15 and later.
    Postgres,
}

impl Dialect {
    /// The values of `expr` over a group, joined by `separator` (a literal).
    pub fn group_concat(self, expr: &str, separator: &str) -> String {
        match self {
            Dialect::Sqlite => format!("group_concat({expr}, '{separator}')"),
            Dialect::Postgres => format!("string_agg({expr}, '{separator}')"),
        }
    }

    /// Whether the text `haystack` contains the text `needle` (exactly, with no
    /// wildcards): both are SQL expressions, placeholders among them.
    pub fn contains(self, haystack: &str, needle: &str) -> String {
        match self {
            Dialect::Sqlite => format!("instr({haystack}, {needle}) > 0"),
            Dialect::Postgres => format!("strpos({haystack}, {needle}) > 0"),
        }
    }
}

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer (booleans are 0 and 1).
    Int(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// A Rust value bound to a statement.
pub trait ToValue {
    /// The value bound.
    fn to_value(&self) -> Value;
}

macro_rules! to_value {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl ToValue for $t {
            fn to_value(&self) -> Value {
                let $v = self;
                $e
            }
        })*
    };
}

to_value! {
    Value => |v| v.clone(),
    i64 => |v| Value::Int(*v),
    i32 => |v| Value::Int((*v).into()),
    u32 => |v| Value::Int((*v).into()),
    u64 => |v| Value::Int(i64::try_from(*v).unwrap_or(i64::MAX)),
    usize => |v| Value::Int(i64::try_from(*v).unwrap_or(i64::MAX)),
    bool => |v| Value::Int((*v).into()),
    f64 => |v| Value::Real(*v),
    str => |v| Value::Text(v.to_owned()),
    String => |v| Value::Text(v.clone()),
    [u8] => |v| Value::Blob(v.to_vec()),
    Vec<u8> => |v| Value::Blob(v.clone()),
}

impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

/// `v` as a `Value`.
pub fn value(v: impl ToValue) -> Value {
    v.to_value()
}

impl Value {
    /// What kind of value it is (for messages: never the value, which may be large).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Real(_) => "a float",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }
}

/// The parameters of a statement, each converted into a `Value`.
#[macro_export]
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        &[$($crate::db::ToValue::to_value(&$v)),*][..]
    };
}
pub use crate::params;

/// One row for `insert_rows`, each value converted into a `Value`.
#[macro_export]
macro_rules! row {
    ($($v:expr),* $(,)?) => {
        vec![$($crate::db::ToValue::to_value(&$v)),*]
    };
}
pub use crate::row;

/// A Rust value read from a column.
pub trait FromValue: Sized {
    /// The Rust value, or `None` when the column holds another type.
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<i64> {
        match value {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Option<bool> {
        i64::from_value(value).map(|v| v != 0)
    }
}

impl FromValue for u64 {
    fn from_value(value: &Value) -> Option<u64> {
        i64::from_value(value).and_then(|v| u64::try_from(v).ok())
    }
}

impl FromValue for u32 {
    fn from_value(value: &Value) -> Option<u32> {
        i64::from_value(value).and_then(|v| u32::try_from(v).ok())
    }
}

impl FromValue for usize {
    fn from_value(value: &Value) -> Option<usize> {
        i64::from_value(value).and_then(|v| usize::try_from(v).ok())
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Option<f64> {
        match value {
            Value::Real(v) => Some(*v),
            Value::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<String> {
        match value {
            Value::Text(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Option<Vec<u8>> {
        match value {
            Value::Blob(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Option<T>> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One row of a query's answer.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i`, as a `T`.
    pub fn get<T: FromValue>(&self, i: usize) -> AppResult<T> {
        let value = self
            .0
            .get(i)
            .ok_or_else(|| AppError::Internal(format!("storage: no column {i}")))?;
        T::from_value(value).ok_or_else(|| {
            AppError::Internal(format!(
                "storage: column {i} holds {}, not a {}",
                value.kind(),
                std::any::type_name::<T>()
            ))
        })
    }
}

/// A connection to the database.
pub trait Conn {
    /// The SQL it reads.
    fn dialect(&self) -> Dialect;
    /// Runs one statement; the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> AppResult<u64>;
    /// Runs one query; every row of its answer.
    fn query(&mut self, sql: &str, params: &[Value]) -> AppResult<Vec<Row>>;
    /// Runs statements without parameters (migrations, transaction control).
    fn batch(&mut self, sql: &str) -> AppResult<()>;
}

impl dyn Conn + '_ {
    /// The first row of a query's answer, through `f`; an error when there is none.
    pub fn query_row<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl FnOnce(&Row) -> AppResult<T>,
    ) -> AppResult<T> {
        self.query_opt(sql, params, f)?
            .ok_or_else(|| AppError::Internal(format!("storage: no row for {sql}")))
    }

    /// The first row of a query's answer through `f`, if there is one.
    pub fn query_opt<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl FnOnce(&Row) -> AppResult<T>,
    ) -> AppResult<Option<T>> {
        self.query(sql, params)?.first().map(f).transpose()
    }

    /// Every row of a query's answer, each through `f`.
    pub fn query_map<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl FnMut(&Row) -> AppResult<T>,
    ) -> AppResult<Vec<T>> {
        self.query(sql, params)?.iter().map(f).collect()
    }

    /// Inserts `rows` with a few statements rather than one per row: `into` is the
    /// statement up to its values (`INSERT INTO t (a, b)`), `then` what follows them (an
    /// `ON CONFLICT` clause, or nothing), and every row holds a value for each column.
    ///
    /// Rows go in groups of 32, 16, 8, 4, 2 and 1, so that a table is written with at most
    /// six statements a connection prepares once, in one round trip each to PostgreSQL.
    pub fn insert_rows(&mut self, into: &str, then: &str, rows: Vec<Vec<Value>>) -> AppResult<()> {
        let Some(width) = rows.first().map(Vec::len) else {
            return Ok(());
        };
        if rows.iter().any(|row| row.len() != width) {
            return Err(AppError::Internal(format!(
                "storage: rows of different widths for {into}"
            )));
        }
        let one = format!("({})", vec!["?"; width].join(", "));
        let mut left = rows.len();
        let mut rows = rows.into_iter();
        while left > 0 {
            let group = INSERT_GROUPS.into_iter().find(|&n| n <= left).unwrap_or(1);
            let sql = format!(
                "{into} VALUES {} {then}",
                vec![one.as_str(); group].join(", ")
            );
            let params: Vec<Value> = rows.by_ref().take(group).flatten().collect();
            self.execute(&sql, &params)?;
            left -= group;
        }
        Ok(())
    }

    /// Runs `f` in a transaction: committed when it succeeds, rolled back when it fails.
    pub fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Conn) -> AppResult<T>,
    ) -> AppResult<T> {
        self.batch(match self.dialect() {
            // Take the write lock at once, so that a read never has to upgrade.
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        })?;
        self.finish(f, "COMMIT", "ROLLBACK")
    }

    /// Runs `f` on one consistent snapshot of the database (its reads see the same
    /// state, whatever commits meanwhile).
    pub fn consistent<T>(&mut self, f: impl FnOnce(&mut dyn Conn) -> AppResult<T>) -> AppResult<T> {
        self.batch(match self.dialect() {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })?;
        self.finish(f, "COMMIT", "ROLLBACK")
    }

    /// Runs `f` inside the open transaction so that, when it fails, only what it did is
    /// undone.
    pub fn savepoint<T>(&mut self, f: impl FnOnce(&mut dyn Conn) -> AppResult<T>) -> AppResult<T> {
        self.batch("SAVEPOINT one")?;
        self.finish(
            f,
            "RELEASE SAVEPOINT one",
            "ROLLBACK TO SAVEPOINT one; RELEASE SAVEPOINT one",
        )
    }

    fn finish<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Conn) -> AppResult<T>,
        commit: &str,
        rollback: &str,
    ) -> AppResult<T> {
        match f(self) {
            Ok(value) => {
                if let Err(e) = self.batch(commit) {
                    // A failed COMMIT may leave the transaction open (SQLite); close it.
                    let _ = self.batch(rollback);
                    return Err(e);
                }
                Ok(value)
            }
            Err(e) => {
                // The error that matters is `e`; a failed rollback leaves nothing
                // committed either way.
                let _ = self.batch(rollback);
                Err(e)
            }
        }
    }
}

/// The statement in PostgreSQL's placeholders: `?N` becomes `$N` and a bare `?` the next
/// number, outside quoted text.
pub fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 0;
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                out.push('$');
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    while let Some(d) = chars.next_if(char::is_ascii_digit) {
                        out.push(d);
                    }
                } else {
                    next += 1;
                    out.push_str(&next.to_string());
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            numbered_placeholders("SELECT a FROM t WHERE b = ?2 AND c = ?1 AND d = '?'"),
            "SELECT a FROM t WHERE b = $2 AND c = $1 AND d = '?'"
        );
        assert_eq!(
            numbered_placeholders("x = ? AND y IN (?, ?) AND z = 'it''s ?'"),
            "x = $1 AND y IN ($2, $3) AND z = 'it''s ?'"
        );
    }

    #[test]
    fn rows_are_inserted_in_groups_in_their_order() {
        let mut conn = rusqlite::Connection::open_in_memory().expect("opens");
        let conn: &mut dyn Conn = &mut conn;
        conn.batch("CREATE TABLE t (n INTEGER PRIMARY KEY, name TEXT)")
            .expect("creates");
        let mut written = 0;
        for count in [0, 1, 7, 33, 70] {
            let rows: Vec<Vec<Value>> = (written..written + count)
                .map(|n| row![n, format!("隐患{n}")])
                .collect();
            conn.insert_rows("INSERT INTO t (n, name)", "ON CONFLICT DO NOTHING", rows)
                .expect("inserts");
            written += count;
        }
        let names = conn
            .query_map("SELECT name FROM t ORDER BY n", &[], |r| r.get::<String>(0))
            .expect("reads");
        let expected: Vec<String> = (0..written).map(|n| format!("隐患{n}")).collect();
        assert_eq!(names, expected);
        let ragged = vec![row![1000, "一"], row![1001, "二"], row![1002]];
        assert!(
            conn.insert_rows("INSERT INTO t (n, name)", "", ragged)
                .is_err()
        );
        let count = conn
            .query_row("SELECT count(*) FROM t", &[], |r| r.get::<i64>(0))
            .expect("counts");
        assert_eq!(count, written, "ragged rows write nothing");
    }

    #[test]
    fn sqlite_statements_are_planned_once_whatever_is_bound() {
        // An ordered union is one SQLite would prepare again each time its bound values
        // are cleared, as the statement cache clears them.
        let dir = tempfile::tempdir().expect("a folder");
        let conn = sqlite::open(&dir.path().join("db")).expect("opens");
        conn.execute_batch("CREATE TABLE d (id TEXT, v TEXT); CREATE TABLE e (id TEXT, v TEXT);")
            .expect("creates");
        let sql = "SELECT 0 AS part, v FROM d WHERE id = ?1 AND ?2 = 1
                   UNION ALL SELECT 1, v FROM e WHERE id = ?1 ORDER BY part";
        for i in 0..10 {
            let mut statement = conn.prepare_cached(sql).expect("prepares");
            statement
                .query(rusqlite::params![format!("案件{i}"), i % 2])
                .expect("runs")
                .next()
                .expect("reads");
            drop(statement);
        }
        let statement = conn.prepare_cached(sql).expect("prepares");
        assert_eq!(
            statement.get_status(rusqlite::StatementStatus::RePrepare),
            0
        );
    }

    #[test]
    fn rows_give_typed_columns_or_say_why_not() {
        let row = Row(vec![Value::Int(3), Value::Null, Value::Text("沪".into())]);
        assert_eq!(row.get::<i64>(0).expect("reads"), 3);
        assert!(row.get::<bool>(0).expect("reads"));
        assert_eq!(row.get::<Option<String>>(1).expect("reads"), None);
        assert_eq!(row.get::<String>(2).expect("reads"), "沪");
        assert!(row.get::<String>(0).is_err());
        assert!(row.get::<i64>(3).is_err());
    }
}
