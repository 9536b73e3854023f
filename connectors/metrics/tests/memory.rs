//! Memory per live series, measured: a counting allocator around the system one, 100k distinct series of a
//! three-label counter fed through the store (its series, its per-label value sets and the partition's
//! checkpoint contributions, which a series of one partition holds as that partition's slot), then all of
//! them expired. Prints the figure and checks the bound.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use serde_json::json;
use ursa_connect::testing::json_record;
use ursa_connector_metrics::parse_definitions;
use ursa_connector_metrics::series::Store;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts the bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as for `realloc` itself.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const SERIES: usize = 100_000;

const THREE_LABELS: &str = r#"
[[metric]]
name = "messages_received"
help = "Messages received by child, device model and age band"
type = "counter"
labels = { child = "child_id", model = "device.model", band = "age_band" }
label_order = ["child", "model", "band"]
max_series = 1000000
max_label_values = 1000000
"#;

/// One label: its values are the series' keys, and no per-label value set is kept.
const ONE_LABEL: &str = r#"
[[metric]]
name = "usage_by_child"
help = "Usage reports per child"
type = "counter"
labels = { child = "child_id" }
max_series = 1000000
max_label_values = 1000000
"#;

/// Feeds `SERIES` distinct children through a store of `definitions`, then expires them all; the bytes
/// per live series.
async fn bytes_per_series(definitions: &str) -> f64 {
    let defs = parse_definitions("memory", definitions, 1, 1).unwrap();
    let records: Vec<_> = (0..SERIES)
        .map(|i| {
            let model = ["tb-1", "tb-2"][i % 2];
            json_record(
                "messages",
                0,
                i as i64,
                json!({"child_id": format!("child-{i:06}"), "device": {"model": model}, "age_band": "5-7"}),
            )
        })
        .collect();
    let values: Vec<_> = records
        .iter()
        .map(|r| r.value_json().unwrap().clone())
        .collect();
    let mut store = Store::new(&defs, Duration::from_secs(60));
    let before = LIVE.load(Ordering::Relaxed);
    for (r, v) in records.iter().zip(&values) {
        store.apply(r, Some(v));
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(store.live(), SERIES);
    let per_series = (after - before) as f64 / SERIES as f64;
    // Expiry gives it back.
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(store.expire(), SERIES as u64);
    let freed = LIVE.load(Ordering::Relaxed);
    assert_eq!(store.live(), 0);
    eprintln!(
        "{SERIES} live series: {} bytes, {per_series:.0} bytes per series (series, label values, checkpoint contributions); after expiry {} bytes still held",
        after - before,
        freed - before
    );
    assert!(
        freed - before < (after - before) / 20,
        "expiry kept {} of {} bytes",
        freed - before,
        after - before
    );
    per_series
}

// One test, so that no other test's allocations are counted meanwhile.
#[tokio::test(start_paused = true)]
async fn bytes_per_live_series() {
    let three = bytes_per_series(THREE_LABELS).await;
    assert!(
        three < 200.0,
        "{three:.0} bytes per live series of three labels: a series counted by one partition should name it, not hold a second entry for its contribution"
    );
    let one = bytes_per_series(ONE_LABEL).await;
    assert!(
        one < 140.0,
        "{one:.0} bytes per live series of one label: its values should be the series' keys, not kept again"
    );
}
