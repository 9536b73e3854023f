//! `ursa-connector-notify`: the notification sink (`connector.class = "notify"`). Safety alerts and guardian
//! notifications over SMS (Twilio), push (FCM HTTP v1, APNs), email (SMTP) and Standard Webhooks — exactly once
//! through a delivery ledger in PostgreSQL, on time (escalation until acknowledged, digests, quiet hours in the
//! guardian's time zone, per-provider and per-recipient limits), and never stalling a partition.
//!
//! - [`config`]: the plugin, its keys and checks; [`rules`]: the rules file (matches, priorities, channels,
//!   templates compiled and dry-run at start-up); [`routing`]: quiet hours, digest windows, escalation steps.
//! - [`recipients`]: the guardian directory; [`dedup`]: the ledger; [`audit`]: `system.audit-log` records
//!   through an outbox; [`ack`]: acknowledgement links and Twilio status callbacks.
//! - [`channels`]: email, SMS, FCM, APNs and webhooks, each provider's documented errors classified.
//! - [`sink`]: the sink and its scheduler.
//! - `testing` (feature `testing`): the loopback peers of the tests.

pub mod ack;
pub mod audit;
pub mod channels;
pub mod config;
pub mod db;
pub mod dedup;
pub mod recipients;
pub mod routing;
pub mod rules;
pub mod sink;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::NotifyPlugin;
pub use sink::NotifySink;
