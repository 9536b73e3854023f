//! The audit tables in the database: installing the bookkeeping objects, creating a topic's table on first use,
//! and adding a new writer schema's columns inside the transaction that writes its first rows (refusing a column
//! whose type would change).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_postgres::Client;

use crate::ddl::{VERSION, columns_sql, install_sql, qualified, quote_ident, table_name};
use crate::error::AuditError;
use crate::schema_map::Column;

/// Installs the bookkeeping tables and functions unless the database has them at this [`VERSION`]; `true` if
/// it installed them.
pub async fn install(client: &Client, schema: &str) -> Result<bool, AuditError> {
    let probe = format!("SELECT {}.ursa_audit_version()", quote_ident(schema));
    if let Ok(row) = client.query_one(&probe, &[]).await {
        if row.try_get::<_, i32>(0).ok() == Some(VERSION) {
            return Ok(false);
        }
    }
    let sql = format!(
        "BEGIN; SELECT pg_advisory_xact_lock(hashtext('ursa_audit_ddl')); {} COMMIT;",
        install_sql(schema)
    );
    if let Err(e) = client.batch_execute(&sql).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(e.into());
    }
    Ok(true)
}

/// A topic's table and the columns it had at the last commit this sink saw.
#[derive(Debug)]
pub struct Table {
    /// The table name (in the configured schema).
    pub name: String,
    /// `"schema"."name"`.
    pub qualified: String,
    columns: Mutex<HashMap<String, String>>,
}

impl Table {
    /// The type of a column, as `format_type` prints it.
    pub fn column_type(&self, name: &str) -> Option<String> {
        self.columns.lock().ok()?.get(name).cloned()
    }

    /// Records the columns a committed transaction left.
    pub fn set_columns(&self, columns: HashMap<String, String>) {
        if let Ok(mut c) = self.columns.lock() {
            *c = columns;
        }
    }

    fn snapshot(&self) -> HashMap<String, String> {
        self.columns.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// The tables of one connector.
#[derive(Debug)]
pub struct Tables {
    schema: String,
    template: String,
    connector: String,
    known: Mutex<HashMap<String, Arc<Table>>>,
}

/// The columns of `schema.table`, `(name, format_type)`.
pub async fn read_columns(
    client: &Client,
    schema: &str,
    table: &str,
) -> Result<HashMap<String, String>, AuditError> {
    let rows = client.query(columns_sql(), &[&schema, &table]).await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

impl Tables {
    /// The tables of `connector` in `schema`, named by `template`.
    pub fn new(schema: &str, template: &str, connector: &str) -> Tables {
        Tables {
            schema: schema.to_owned(),
            template: template.to_owned(),
            connector: connector.to_owned(),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The table of `topic` if this sink has seen it.
    pub fn get(&self, topic: &str) -> Option<Arc<Table>> {
        self.known.lock().ok()?.get(topic).cloned()
    }

    /// The table of `topic`, created (through `ursa_audit_create_table`) if missing. A topic keeps the table it
    /// was first given, whatever the template says later.
    pub async fn ensure(&self, client: &Client, topic: &str) -> Result<Arc<Table>, AuditError> {
        if let Some(t) = self.get(topic) {
            return Ok(t);
        }
        let s = quote_ident(&self.schema);
        let registered = client
            .query_opt(
                &format!("SELECT table_name FROM {s}.ursa_audit_tables WHERE connector = $1 AND topic = $2"),
                &[&self.connector, &topic],
            )
            .await?
            .map(|r| r.get::<_, String>(0));
        let name = match registered {
            Some(name) => name,
            None => {
                let name = table_name(&self.template, &self.connector, topic);
                let taken = client
                    .query_opt(
                        &format!(
                            "SELECT connector, topic FROM {s}.ursa_audit_tables WHERE table_name = $1 \
                             AND NOT (connector = $2 AND topic = $3)"
                        ),
                        &[&name, &self.connector, &topic],
                    )
                    .await?;
                if let Some(row) = taken {
                    return Err(AuditError::Config(format!(
                        "table {name} for topic {topic} is already the table of topic {} of connector {}: \
                         change audit.table.name.format",
                        row.get::<_, String>(1),
                        row.get::<_, String>(0)
                    )));
                }
                client
                    .execute(
                        &format!("SELECT {s}.ursa_audit_create_table($1, $2, $3)"),
                        &[&self.connector, &topic, &name],
                    )
                    .await?;
                name
            }
        };
        let columns = read_columns(client, &self.schema, &name).await?;
        let table = Arc::new(Table {
            qualified: qualified(&self.schema, &name),
            name,
            columns: Mutex::new(columns),
        });
        if let Ok(mut known) = self.known.lock() {
            known.insert(topic.to_owned(), Arc::clone(&table));
        }
        Ok(table)
    }

    /// Makes sure `table` has `wanted` with their types, adding the missing ones (inside the caller's
    /// transaction); returns the columns the table will have if the transaction commits, or `None` when none
    /// was added. A column that exists with another type is an error naming the table, column and both types.
    pub async fn add_columns(
        &self,
        client: &Client,
        table: &Table,
        wanted: &[Column],
        schema_id: Option<u32>,
    ) -> Result<Option<HashMap<String, String>>, AuditError> {
        let mut columns = table.snapshot();
        let check = |columns: &HashMap<String, String>| -> Result<Vec<Column>, AuditError> {
            let mut missing = Vec::new();
            for c in wanted {
                let ty = c.pg.sql();
                match columns.get(&c.name) {
                    Some(have) if *have == ty => {}
                    Some(have) => {
                        return Err(AuditError::Schema(format!(
                            "incompatible schema change on table {}: column {} is {have}, but writer schema {} maps \
                             field `{}` to {ty}; rows are never rewritten, so register a compatible schema (or write \
                             this topic to another table)",
                            table.qualified,
                            quote_ident(&c.name),
                            schema_id.map_or_else(|| "?".to_owned(), |i| i.to_string()),
                            c.path
                        )));
                    }
                    None => missing.push(c.clone()),
                }
            }
            Ok(missing)
        };
        let missing = check(&columns)?;
        if missing.is_empty() {
            return Ok(None);
        }
        let s = quote_ident(&self.schema);
        let add = format!("SELECT {s}.ursa_audit_add_column($1, $2, $3)");
        for c in &missing {
            client
                .execute(&add, &[&table.name, &c.name, &c.pg.sql()])
                .await?;
        }
        // Another writer may have added some of them first, with its own idea of their type.
        columns = read_columns(client, &self.schema, &table.name).await?;
        let still = check(&columns)?;
        if let Some(c) = still.first() {
            return Err(AuditError::Schema(format!(
                "column {} was not added to {}",
                c.name, table.qualified
            )));
        }
        Ok(Some(columns))
    }
}
