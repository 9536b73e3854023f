//! The guardian directory, built from the catalog's events and kept in PostgreSQL (so a restart does not rebuild
//! it): per guardian the addresses per channel (E.164-checked phone, email, webhook URL, push tokens with their
//! platform), preferences per category, quiet hours with a time zone, and a locale.
//!
//! - `child.registered` makes the household's primary guardian (id = the household id) from the registration's
//!   contact fields, and maps the child to its household.
//! - `child.profile-updated` applies changes to `guardian_email`, `guardian_phone`, `locale.language_tag` and
//!   `locale.time_zone`.
//! - `guardian.contact-updated` (`com.teddy.guardian.GuardianContactUpdated`) adds or changes any guardian of a
//!   household: contacts, devices, quiet hours, preferences, or removes one.
//!
//! Which of these a record is comes from its Avro writer schema's name, so topics may be named as a deployment
//! likes (an environment prefix, another name); a record without one (JSON) goes by the catalog's topic names,
//! and `notify.directory.guardian.topic` names the guardian topic.
//!
//! Acknowledgements come on `guardian.alert-acknowledged` (`com.teddy.guardian.AlertAcknowledged`, read by the
//! sink when `notify.ack.topic` names it).
//!
//! Push tokens are never deleted on an error: they are quarantined, re-checked later, and re-activated when the
//! device registers them again.

use serde_json::Value;

use crate::channels::sms::is_e164;
use crate::db::{Conn, DbError, now_ms};
use crate::rules::parse_hhmm;

/// A guardian as the directory knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Guardian {
    /// The id (pseudonymous; what audit records name).
    pub id: String,
    /// Their household.
    pub household_id: String,
    /// Email address.
    pub email: Option<String>,
    /// E.164 phone number.
    pub phone: Option<String>,
    /// Their own webhook endpoint.
    pub webhook_url: Option<String>,
    /// BCP 47 locale.
    pub locale: String,
    /// IANA time zone.
    pub time_zone: String,
    /// Quiet hours (seconds after local midnight): start, end.
    pub quiet: Option<(u32, u32)>,
    /// Preferences per category: `{"milestones": {"enabled": false}, "usage": {"channels": ["email"]}}`.
    pub preferences: Value,
}

/// A device token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// SHA-256 of the token (the ledger's target).
    pub hash: String,
    /// The token.
    pub token: String,
    /// `fcm` or `apns`.
    pub platform: String,
    /// `active`, `quarantined` or `dead`.
    pub state: String,
}

impl Guardian {
    /// Whether they want `category` notifications (`safety` and `immediate` ones cannot be turned off).
    pub fn wants(&self, category: &str, immediate: bool) -> bool {
        if immediate || category == "safety" {
            return true;
        }
        self.preferences
            .get(category)
            .and_then(|p| p.get("enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// The channels they prefer for `category`, if they said.
    pub fn channels_for(&self, category: &str) -> Option<Vec<String>> {
        self.preferences
            .get(category)?
            .get("channels")?
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
    }
}

fn guardian_from_row(r: &tokio_postgres::Row) -> Guardian {
    let qs: Option<i32> = r.get("quiet_start");
    let qe: Option<i32> = r.get("quiet_end");
    Guardian {
        id: r.get("guardian_id"),
        household_id: r.get("household_id"),
        email: r.get("email"),
        phone: r.get("phone"),
        webhook_url: r.get("webhook_url"),
        locale: r.get("locale"),
        time_zone: r.get("time_zone"),
        quiet: match (qs, qe) {
            (Some(s), Some(e)) if s >= 0 && e >= 0 => Some((s as u32, e as u32)),
            _ => None,
        },
        preferences: r.get("preferences"),
    }
}

const GUARDIAN_COLUMNS: &str = "guardian_id, household_id, email, phone, webhook_url, locale, time_zone, quiet_start, quiet_end, preferences";

/// The guardians of a household, or of a child's household when `id` is a child id.
pub async fn guardians(conn: &Conn<'_>, id: &str) -> Result<Vec<Guardian>, DbError> {
    let rows = conn
        .query(
            &format!(
                "SELECT {GUARDIAN_COLUMNS} FROM notify_guardian WHERE household_id = $1
                 OR household_id = (SELECT household_id FROM notify_child WHERE child_id = $1)
                 ORDER BY guardian_id"
            ),
            &[&id],
        )
        .await?;
    Ok(rows.iter().map(guardian_from_row).collect())
}

/// One guardian.
pub async fn guardian(conn: &Conn<'_>, id: &str) -> Result<Option<Guardian>, DbError> {
    let row = conn
        .query_opt(
            &format!("SELECT {GUARDIAN_COLUMNS} FROM notify_guardian WHERE guardian_id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(guardian_from_row))
}

/// A guardian's devices that may be sent to (active ones).
pub async fn devices(conn: &Conn<'_>, guardian_id: &str) -> Result<Vec<Device>, DbError> {
    let rows = conn
        .query(
            "SELECT token_hash, token, platform, state FROM notify_device
             WHERE guardian_id = $1 AND state = 'active' ORDER BY token_hash",
            &[&guardian_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Device {
            hash: r.get(0),
            token: r.get(1),
            platform: r.get(2),
            state: r.get(3),
        })
        .collect())
}

/// A device by its hash, whatever its state.
pub async fn device(conn: &Conn<'_>, hash: &str) -> Result<Option<Device>, DbError> {
    let row = conn
        .query_opt(
            "SELECT token_hash, token, platform, state FROM notify_device WHERE token_hash = $1",
            &[&hash],
        )
        .await?;
    Ok(row.map(|r| Device {
        hash: r.get(0),
        token: r.get(1),
        platform: r.get(2),
        state: r.get(3),
    }))
}

/// Quarantines a token: not used until re-checked (FCM: a `validate_only` send after `recheck_after_ms`) or
/// registered again.
pub async fn quarantine(
    conn: &Conn<'_>,
    hash: &str,
    error: &str,
    recheck_after_ms: i64,
) -> Result<(), DbError> {
    let now = now_ms();
    conn
        .execute(
            "UPDATE notify_device SET state = 'quarantined', failures = failures + 1,
             quarantined_at = $2::bigint, recheck_at = $2::bigint + $3::bigint * (1::bigint << LEAST(failures, 6)), last_error = $4, updated_at = $2::bigint
             WHERE token_hash = $1 AND state <> 'dead'",
            &[&hash, &now, &recheck_after_ms, &error],
        )
        .await?;
    Ok(())
}

/// A re-check's result: active again, or one more failure (`dead` after `max_failures`, still kept).
pub async fn recheck_result(
    conn: &Conn<'_>,
    hash: &str,
    ok: bool,
    error: &str,
    recheck_after_ms: i64,
    max_failures: i32,
) -> Result<(), DbError> {
    let now = now_ms();
    if ok {
        conn
            .execute(
                "UPDATE notify_device SET state = 'active', failures = 0, recheck_at = NULL, updated_at = $2
                 WHERE token_hash = $1",
                &[&hash, &now],
            )
            .await?;
    } else {
        conn
            .execute(
                "UPDATE notify_device SET failures = failures + 1, last_error = $3, updated_at = $2::bigint,
                 state = CASE WHEN failures + 1 >= $5 THEN 'dead' ELSE 'quarantined' END,
                 recheck_at = CASE WHEN failures + 1 >= $5 THEN NULL ELSE $2::bigint + $4::bigint * (1::bigint << LEAST(failures + 1, 6)) END
                 WHERE token_hash = $1",
                &[&hash, &now, &error, &recheck_after_ms, &max_failures],
            )
            .await?;
    }
    Ok(())
}

/// Quarantined tokens due for a re-check.
pub async fn due_rechecks(conn: &Conn<'_>, limit: i64) -> Result<Vec<Device>, DbError> {
    let rows = conn
        .query(
            "SELECT token_hash, token, platform, state FROM notify_device
             WHERE state = 'quarantined' AND recheck_at <= $1 ORDER BY recheck_at LIMIT $2",
            &[&now_ms(), &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Device {
            hash: r.get(0),
            token: r.get(1),
            platform: r.get(2),
            state: r.get(3),
        })
        .collect())
}

/// What a directory event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryEvent {
    /// `com.teddy.child.ChildRegistered`.
    ChildRegistered,
    /// `com.teddy.child.ChildProfileUpdated`.
    ChildProfileUpdated,
    /// `com.teddy.guardian.GuardianContactUpdated`.
    GuardianContactUpdated,
}

impl DirectoryEvent {
    /// From an Avro writer schema's full name, else (no schema) from the topic.
    pub fn of(
        type_name: Option<&str>,
        topic: &str,
        guardian_topic: &str,
    ) -> Option<DirectoryEvent> {
        match type_name {
            Some("com.teddy.child.ChildRegistered") => Some(DirectoryEvent::ChildRegistered),
            Some("com.teddy.child.ChildProfileUpdated") => {
                Some(DirectoryEvent::ChildProfileUpdated)
            }
            Some("com.teddy.guardian.GuardianContactUpdated") => {
                Some(DirectoryEvent::GuardianContactUpdated)
            }
            Some(_) => None,
            None if topic == guardian_topic => Some(DirectoryEvent::GuardianContactUpdated),
            None => match topic {
                "child.registered" => Some(DirectoryEvent::ChildRegistered),
                "child.profile-updated" => Some(DirectoryEvent::ChildProfileUpdated),
                "guardian.contact-updated" => Some(DirectoryEvent::GuardianContactUpdated),
                _ => None,
            },
        }
    }
}

fn text(v: &Value, path: &[&str]) -> Option<String> {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// What a directory event changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// The guardian changed (audit records name them).
    pub guardian_id: Option<String>,
    /// Warnings (an invalid phone number, an unknown time zone): the rest is applied.
    pub warnings: Vec<String>,
}

fn valid_phone(p: Option<String>, warnings: &mut Vec<String>) -> Option<String> {
    match p {
        Some(p) if is_e164(p.trim()) => Some(p.trim().to_owned()),
        Some(_) => {
            warnings.push(
                "a phone number is not E.164 (+ and up to 15 digits): SMS is off for this guardian"
                    .into(),
            );
            None
        }
        None => None,
    }
}

fn valid_zone(z: Option<String>, warnings: &mut Vec<String>) -> Option<String> {
    match z {
        Some(z) if jiff::tz::TimeZone::get(&z).is_ok() => Some(z),
        Some(_) => {
            warnings.push("an unknown time zone: UTC is used".into());
            None
        }
        None => None,
    }
}

/// Applies a directory event (see the module docs).
pub async fn apply(
    conn: &mut Conn<'_>,
    kind: DirectoryEvent,
    event: &Value,
) -> Result<Applied, DbError> {
    let now = now_ms();
    let mut applied = Applied::default();
    match kind {
        DirectoryEvent::ChildRegistered => {
            let (Some(child), Some(household)) = (
                text(event, &["child", "child_id"]),
                text(event, &["child", "household_id"]),
            ) else {
                applied
                    .warnings
                    .push("a registration without child or household id".into());
                return Ok(applied);
            };
            let phone = valid_phone(text(event, &["guardian_phone"]), &mut applied.warnings);
            let zone = valid_zone(text(event, &["locale", "time_zone"]), &mut applied.warnings)
                .unwrap_or_else(|| "UTC".into());
            let locale = text(event, &["locale", "language_tag"]).unwrap_or_else(|| "en".into());
            let email = text(event, &["guardian_email"]);
            let tx = conn.client_mut().transaction().await?;
            tx.execute(
                "INSERT INTO notify_child (child_id, household_id, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (child_id) DO UPDATE SET household_id = EXCLUDED.household_id, updated_at = EXCLUDED.updated_at",
                &[&child, &household, &now],
            )
            .await?;
            tx.execute(
                "INSERT INTO notify_guardian (guardian_id, household_id, email, phone, locale, time_zone, updated_at)
                 VALUES ($1, $1, $2, $3, $4, $5, $6)
                 ON CONFLICT (guardian_id) DO UPDATE SET email = EXCLUDED.email, phone = EXCLUDED.phone,
                   locale = EXCLUDED.locale, time_zone = EXCLUDED.time_zone, updated_at = EXCLUDED.updated_at",
                &[&household, &email, &phone, &locale, &zone, &now],
            )
            .await?;
            tx.commit().await?;
            applied.guardian_id = Some(household);
        }
        DirectoryEvent::ChildProfileUpdated => {
            let (Some(child), Some(household)) = (
                text(event, &["child", "child_id"]),
                text(event, &["child", "household_id"]),
            ) else {
                return Ok(applied);
            };
            conn
                .execute(
                    "INSERT INTO notify_child (child_id, household_id, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (child_id) DO UPDATE SET household_id = EXCLUDED.household_id, updated_at = EXCLUDED.updated_at",
                    &[&child, &household, &now],
                )
                .await?;
            for change in event
                .get("changes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(path) = change.get("field_path").and_then(Value::as_str) else {
                    continue;
                };
                let new = change
                    .get("new_value")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let (column, value) = match path {
                    "guardian_email" => ("email", new),
                    "guardian_phone" => ("phone", valid_phone(new, &mut applied.warnings)),
                    "locale.language_tag" => ("locale", new),
                    "locale.time_zone" => ("time_zone", valid_zone(new, &mut applied.warnings)),
                    _ => continue,
                };
                if matches!(column, "locale" | "time_zone") && value.is_none() {
                    continue;
                }
                conn
                    .execute(
                        &format!(
                            "UPDATE notify_guardian SET {column} = $2, updated_at = $3 WHERE guardian_id = $1"
                        ),
                        &[&household, &value, &now],
                    )
                    .await?;
                applied.guardian_id = Some(household.clone());
            }
        }
        DirectoryEvent::GuardianContactUpdated => {
            let Some(guardian) = text(event, &["guardian_id"]) else {
                applied
                    .warnings
                    .push("a guardian event without guardian_id".into());
                return Ok(applied);
            };
            applied.guardian_id = Some(guardian.clone());
            if event.get("removed").and_then(Value::as_bool) == Some(true) {
                let tx = conn.client_mut().transaction().await?;
                tx.execute(
                    "DELETE FROM notify_guardian WHERE guardian_id = $1",
                    &[&guardian],
                )
                .await?;
                tx.execute(
                    "UPDATE notify_device SET state = 'dead', updated_at = $2 WHERE guardian_id = $1",
                    &[&guardian, &now],
                )
                .await?;
                tx.commit().await?;
                return Ok(applied);
            }
            let household = text(event, &["household_id"]).unwrap_or_else(|| guardian.clone());
            let phone = valid_phone(text(event, &["phone"]), &mut applied.warnings);
            let zone = valid_zone(text(event, &["time_zone"]), &mut applied.warnings);
            let quiet = event.get("quiet_hours").and_then(|q| {
                let s = parse_hhmm(q.get("start")?.as_str()?)?;
                let e = parse_hhmm(q.get("end")?.as_str()?)?;
                Some((s as i32, e as i32))
            });
            let clear_quiet = event.get("quiet_hours").is_some_and(Value::is_null);
            let prefs = event.get("preferences").filter(|p| p.is_object()).cloned();
            let tx = conn.client_mut().transaction().await?;
            tx.execute(
                "INSERT INTO notify_guardian (guardian_id, household_id, email, phone, webhook_url, locale, time_zone,
                   quiet_start, quiet_end, preferences, updated_at)
                 VALUES ($1, $2, $3, $4, $5, COALESCE($6, 'en'), COALESCE($7, 'UTC'), $8, $9, COALESCE($10, '{}'::jsonb), $11)
                 ON CONFLICT (guardian_id) DO UPDATE SET
                   household_id = EXCLUDED.household_id,
                   email = COALESCE($3, notify_guardian.email),
                   phone = COALESCE($4, notify_guardian.phone),
                   webhook_url = COALESCE($5, notify_guardian.webhook_url),
                   locale = COALESCE($6, notify_guardian.locale),
                   time_zone = COALESCE($7, notify_guardian.time_zone),
                   quiet_start = CASE WHEN $12 THEN NULL ELSE COALESCE($8, notify_guardian.quiet_start) END,
                   quiet_end = CASE WHEN $12 THEN NULL ELSE COALESCE($9, notify_guardian.quiet_end) END,
                   preferences = COALESCE($10, notify_guardian.preferences),
                   updated_at = EXCLUDED.updated_at",
                &[
                    &guardian,
                    &household,
                    &text(event, &["email"]),
                    &phone,
                    &text(event, &["webhook_url"]),
                    &text(event, &["locale"]),
                    &zone,
                    &quiet.map(|q| q.0),
                    &quiet.map(|q| q.1),
                    &prefs,
                    &now,
                    &clear_quiet,
                ],
            )
            .await?;
            for d in event
                .get("devices")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(token), Some(platform)) = (
                    d.get("token").and_then(Value::as_str),
                    d.get("platform")
                        .and_then(Value::as_str)
                        .map(str::to_ascii_lowercase),
                ) else {
                    continue;
                };
                let platform = platform.as_str();
                if !matches!(platform, "fcm" | "apns") {
                    applied.warnings.push(format!(
                        "device platform {platform:?} is neither fcm nor apns"
                    ));
                    continue;
                }
                let hash = crate::channels::jwt::sha256_hex(token.as_bytes())[..32].to_owned();
                let active = d.get("active").and_then(Value::as_bool).unwrap_or(true);
                // Registering a token again re-activates it (its quarantine is over: the device says it is
                // valid); `active: false` retires it (kept, never deleted).
                tx.execute(
                    "INSERT INTO notify_device (token_hash, token, guardian_id, platform, state, registered_at, updated_at)
                     VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN 'active' ELSE 'dead' END, $6, $6)
                     ON CONFLICT (token_hash) DO UPDATE SET guardian_id = EXCLUDED.guardian_id,
                       platform = EXCLUDED.platform, state = EXCLUDED.state, failures = 0, recheck_at = NULL,
                       registered_at = EXCLUDED.registered_at, updated_at = EXCLUDED.updated_at",
                    &[&hash, &token, &guardian, &platform, &active, &now],
                )
                .await?;
            }
            tx.commit().await?;
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn preferences() {
        let g = Guardian {
            id: "g".into(),
            household_id: "h".into(),
            email: None,
            phone: None,
            webhook_url: None,
            locale: "en".into(),
            time_zone: "UTC".into(),
            quiet: None,
            preferences: serde_json::json!({"milestones": {"enabled": false}, "safety": {"enabled": false}, "usage": {"channels": ["email"]}}),
        };
        assert!(!g.wants("milestones", false));
        assert!(
            g.wants("milestones", true),
            "immediate cannot be turned off"
        );
        assert!(g.wants("safety", false), "safety cannot be turned off");
        assert_eq!(g.channels_for("usage"), Some(vec!["email".to_owned()]));
    }

    #[test]
    fn directory_events_go_by_their_schema_then_their_topic() {
        use DirectoryEvent::*;
        let of = |name, topic| DirectoryEvent::of(name, topic, "people");
        // An Avro record says what it is, whatever the topic is called.
        assert_eq!(
            of(
                Some("com.teddy.child.ChildRegistered"),
                "staging.child.registered"
            ),
            Some(ChildRegistered)
        );
        assert_eq!(
            of(Some("com.teddy.guardian.GuardianContactUpdated"), "x"),
            Some(GuardianContactUpdated)
        );
        assert_eq!(
            of(Some("com.teddy.child.MilestoneAchieved"), "people"),
            None
        );
        // Without a schema: the configured guardian topic, then the catalog's names.
        assert_eq!(of(None, "people"), Some(GuardianContactUpdated));
        assert_eq!(of(None, "child.profile-updated"), Some(ChildProfileUpdated));
        assert_eq!(of(None, "staging.child.registered"), None);
    }
}
