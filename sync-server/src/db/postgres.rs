//! PostgreSQL behind `Conn`, through `tokio-postgres`. Each connection's protocol is
//! driven by a thread of its own (a small runtime), so that the storage code, which runs
//! on the server's worker threads and its pools alike, waits for an answer as it waits
//! for SQLite's: briefly, without entering the server's runtime. Connections are kept in
//! a bounded pool.

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Condvar, Mutex};

use bytes::BytesMut;
use futures_executor::block_on;
use postgres_types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls, Statement};

use super::{Conn, Dialect, Row, STATEMENTS_KEPT, Value, numbered_placeholders};
use crate::error::{AppError, AppResult};

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(v), &Type::INT8) => v.to_sql(ty, out),
            (Value::Int(v), &Type::INT4) => i32::try_from(*v)?.to_sql(ty, out),
            (Value::Int(v), &Type::INT2) => i16::try_from(*v)?.to_sql(ty, out),
            (Value::Int(v), &Type::FLOAT8) => (*v as f64).to_sql(ty, out),
            (Value::Int(v), &Type::BOOL) => (*v != 0).to_sql(ty, out),
            (Value::Int(v), _) => v.to_string().as_str().to_sql(ty, out),
            (Value::Real(v), &Type::FLOAT4) => (*v as f32).to_sql(ty, out),
            (Value::Real(v), _) => v.to_sql(ty, out),
            (Value::Text(v), _) => v.as_str().to_sql(ty, out),
            (Value::Blob(v), _) => v.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Value, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            Type::NUMERIC => numeric(raw)?,
            _ => Value::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Value, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A NUMERIC (what `sum` of integers gives): an integer when it is one, else a float.
fn numeric(raw: &[u8]) -> Result<Value, BoxError> {
    let word = |i: usize| -> Result<i16, BoxError> {
        let bytes = raw.get(i * 2..i * 2 + 2).ok_or("a NUMERIC cut short")?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    };
    let (digits, weight, sign) = (word(0)?, word(1)?, word(2)? as u16);
    if sign == 0xC000 {
        return Ok(Value::Real(f64::NAN));
    }
    let mut value = 0f64;
    for i in 0..digits.max(0) as usize {
        let exponent = i32::from(weight) - i as i32;
        value += f64::from(word(4 + i)?) * 10000f64.powi(exponent);
    }
    if sign == 0x4000 {
        value = -value;
    }
    Ok(if value.fract() == 0.0 && value.abs() < 9e15 {
        Value::Int(value as i64)
    } else {
        Value::Real(value)
    })
}

/// One connection, with its prepared statements.
pub struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl PgConn {
    /// Connects to `url` (`postgres://…`).
    pub fn connect(url: &str) -> AppResult<PgConn> {
        let url = url.to_owned();
        let client = on_own_thread("anjian-postgres", "connect to", |ready| async move {
            match tokio_postgres::connect(&url, NoTls).await {
                Ok((client, connection)) => {
                    let _ = ready.send(Ok(client));
                    if let Err(e) = connection.await {
                        tracing::warn!("a PostgreSQL connection ended: {e}");
                    }
                }
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                }
            }
        })?;
        Ok(PgConn {
            client,
            statements: HashMap::new(),
        })
    }

    fn statement(&mut self, sql: &str) -> AppResult<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = block_on(self.client.prepare(&numbered_placeholders(sql)))?;
        // Statements made from filters (a page's limit and offset among them) can be many:
        // the cache starts over rather than grow without end (dropped statements are closed
        // on the server).
        if self.statements.len() >= STATEMENTS_KEPT {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Whether the connection is gone (the server restarted, the network broke).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

fn refs(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Conn for PgConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> AppResult<u64> {
        let statement = self.statement(sql)?;
        Ok(block_on(self.client.execute(&statement, &refs(params)))?)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> AppResult<Vec<Row>> {
        let statement = self.statement(sql)?;
        let rows = block_on(self.client.query(&statement, &refs(params)))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.try_get::<_, Value>(i))
                    .collect::<Result<_, _>>()
                    .map(Row)
                    .map_err(AppError::from)
            })
            .collect()
    }

    fn batch(&mut self, sql: &str) -> AppResult<()> {
        Ok(block_on(self.client.batch_execute(sql))?)
    }
}

/// Listens on `channel` from a connection of its own: every notification's payload, as it
/// arrives. The receiver ends when the connection does (the database restarted, the
/// network broke); listen again then, and catch up on what was missed.
pub fn listen(url: &str, channel: &str) -> AppResult<mpsc::UnboundedReceiver<String>> {
    let (url, listen) = (url.to_owned(), format!("LISTEN {channel}"));
    on_own_thread("anjian-listen", "listen on", |ready| async move {
        let (client, mut connection) = match tokio_postgres::connect(&url, NoTls).await {
            Ok(connected) => connected,
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        let (notes, received) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(note))) => {
                        if notes.send(note.payload().to_owned()).is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!("the listening connection ended: {e}");
                        return;
                    }
                    None => return,
                }
            }
        });
        match client.batch_execute(&listen).await {
            Ok(()) => {
                let _ = ready.send(Ok(received));
                // The client lives as long as its connection does.
                let _ = driver.await;
            }
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
            }
        }
    })
}

/// Runs `work` on a thread of its own, in a small runtime, and waits for its first report
/// through `ready`: what it made, or why it could not (`doing` says what it was for).
fn on_own_thread<T, F>(
    name: &str,
    doing: &str,
    work: impl FnOnce(std::sync::mpsc::Sender<Result<T, String>>) -> F + Send + 'static,
) -> AppResult<T>
where
    T: Send + 'static,
    F: Future<Output = ()>,
{
    let (ready, started) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(work(ready)),
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                }
            }
        })
        .map_err(|e| AppError::Internal(format!("storage: a thread for PostgreSQL: {e}")))?;
    started
        .recv()
        .map_err(|_| AppError::Internal("storage: PostgreSQL's thread stopped".into()))?
        .map_err(|e| AppError::Internal(format!("storage: cannot {doing} PostgreSQL: {e}")))
}

impl From<tokio_postgres::Error> for AppError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => AppError::Internal(format!(
                "storage: {} ({}){}",
                db.message(),
                db.code().code(),
                db.detail().map(|d| format!(": {d}")).unwrap_or_default()
            )),
            None => AppError::Internal(format!("storage: {e}")),
        }
    }
}

/// A bounded pool of connections to one database.
pub struct Pool {
    url: String,
    size: usize,
    idle: Mutex<(Vec<PgConn>, usize)>,
    returned: Condvar,
}

impl Pool {
    /// A pool of at most `size` connections to `url`; one is made at once, to check the
    /// address.
    pub fn open(url: &str, size: usize) -> AppResult<Pool> {
        let first = PgConn::connect(url)?;
        Ok(Pool {
            url: url.to_owned(),
            size: size.max(1),
            idle: Mutex::new((vec![first], 1)),
            returned: Condvar::new(),
        })
    }

    /// Runs `f` with a connection of the pool, waiting for one when all are in use.
    pub fn with<T>(&self, f: impl FnOnce(&mut PgConn) -> AppResult<T>) -> AppResult<T> {
        let mut lent = Lent {
            pool: self,
            conn: Some(self.take()?),
        };
        match lent.conn.as_mut() {
            Some(conn) => f(conn),
            None => Err(AppError::Internal(
                "a connection lent without itself".into(),
            )),
        }
    }

    fn take(&self) -> AppResult<PgConn> {
        let poisoned = |_| AppError::Internal("storage: the PostgreSQL pool is poisoned".into());
        let mut idle = self.idle.lock().map_err(poisoned)?;
        loop {
            if let Some(conn) = idle.0.pop() {
                if conn.is_closed() {
                    idle.1 -= 1;
                    continue;
                }
                return Ok(conn);
            }
            if idle.1 < self.size {
                idle.1 += 1;
                drop(idle);
                return PgConn::connect(&self.url).inspect_err(|_| {
                    if let Ok(mut idle) = self.idle.lock() {
                        idle.1 -= 1;
                    }
                });
            }
            idle = self.returned.wait(idle).map_err(poisoned)?;
        }
    }

    /// Takes a connection back; one closed, or whose user panicked (it may be in the
    /// middle of anything), is let go, and a new one made when needed.
    fn give_back(&self, conn: PgConn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if conn.is_closed() || std::thread::panicking() {
            idle.1 -= 1;
        } else {
            idle.0.push(conn);
        }
        self.returned.notify_one();
    }
}

/// A connection lent out; it goes back when dropped, even if its user panicked.
struct Lent<'a> {
    pool: &'a Pool,
    conn: Option<PgConn>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }
}
