//! A small pool of PostgreSQL connections, each with its prepared statements. A connection goes back to the pool
//! only when its user says it is clean ([`Conn::release`]); dropped otherwise (an error, a cancelled call in the
//! middle of a transaction), it is closed, and the server rolls back whatever it had open. That is what makes the
//! sink's calls cancel-safe.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, Statement};

use crate::connect::{ConnectError, Database};

struct Entry {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// The pool.
pub struct Pool {
    db: Database,
    idle: Mutex<Vec<Entry>>,
    permits: Semaphore,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("db", &self.db)
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

impl Pool {
    /// At most `size` connections to `db`, opened on demand.
    pub fn new(db: Database, size: usize) -> Pool {
        Pool {
            db,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
        }
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// A connection: an idle one that is still open, or a new one.
    pub async fn get(&self) -> Result<Conn<'_>, ConnectError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ConnectError::Tls("the pool is closed".into()))?;
        let idle = self.idle.lock().ok().and_then(|mut idle| {
            while let Some(e) = idle.pop() {
                if !e.client.is_closed() {
                    return Some(e);
                }
            }
            None
        });
        let entry = match idle {
            Some(e) => e,
            None => Entry {
                client: self.db.connect().await?,
                statements: HashMap::new(),
            },
        };
        Ok(Conn {
            entry,
            pool: self,
            _permit: permit,
        })
    }

    /// Closes every idle connection (the server restarted, say).
    pub fn clear(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

/// A connection taken from the pool. Dropped without [`Conn::release`], it closes.
pub struct Conn<'p> {
    entry: Entry,
    pool: &'p Pool,
    _permit: SemaphorePermit<'p>,
}

impl Conn<'_> {
    /// The client.
    pub fn client(&self) -> &Client {
        &self.entry.client
    }

    /// A statement prepared once per connection.
    pub async fn prepare(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.entry.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.entry.client.prepare(sql).await?;
        if self.entry.statements.len() > 256 {
            self.entry.statements.clear();
        }
        self.entry.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    /// Gives the connection back: it is outside any transaction.
    pub fn release(self) {
        let Conn { entry, pool, .. } = self;
        if !entry.client.is_closed() {
            if let Ok(mut idle) = pool.idle.lock() {
                idle.push(entry);
            }
        }
    }
}
