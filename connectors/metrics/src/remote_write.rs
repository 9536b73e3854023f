//! Prometheus remote write 1.0: the store's samples (the same as the exposition's, stamped with the
//! processing time) as a snappy-compressed protobuf `WriteRequest`, in batches, retried with backoff and
//! honouring 429 and `Retry-After`. Values are cumulative, so a retried or repeated push never counts twice.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ursa_connect::SinkError;

/// A sample: its labels (`__name__` first as written, sorted before encoding), value, and timestamp in ms
/// (`None`: the push's).
pub type Sample = (Vec<(String, String)>, f64, Option<i64>);

/// Samples from Prometheus text (the exposition's own output).
pub fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // `series value [timestamp]`. Without a timestamp the field before the value ends the series (`}` or
        // the metric name), never a number, so a number there means the last field is a timestamp.
        let (rest, last) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let is_value = |v: &str| v.parse::<f64>().is_ok() || matches!(v, "+Inf" | "-Inf" | "NaN");
        let (series, value, ts) = match (rest.rsplit_once(' '), last.parse::<i64>()) {
            (Some((series, value)), Ok(ts)) if is_value(value) => (series, value, Some(ts)),
            _ => (rest, last, None),
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => match v.parse() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        let (name, rest) = match series.split_once('{') {
            Some((n, r)) => (n, r.strip_suffix('}').unwrap_or(r)),
            None => (series, ""),
        };
        let mut labels = vec![("__name__".to_owned(), name.to_owned())];
        let mut chars = rest.chars().peekable();
        loop {
            let mut key = String::new();
            while let Some(&c) = chars.peek() {
                chars.next();
                if c == '=' {
                    break;
                }
                if c != ',' {
                    key.push(c);
                }
            }
            if key.is_empty() || chars.next() != Some('"') {
                break;
            }
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(o) => value.push(o),
                        None => {}
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.push((key, value));
        }
        out.push((labels, value, ts));
    }
    out
}

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn bytes_field(buf: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(buf, (field << 3) | 2);
    varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// A `prometheus.WriteRequest` with one sample per series, at its own timestamp or `timestamp_ms`,
/// protobuf-encoded.
pub fn encode(samples: &[Sample], timestamp_ms: i64) -> Vec<u8> {
    let mut req = Vec::new();
    let mut ts = Vec::new();
    let mut item = Vec::new();
    for (labels, value, at) in samples {
        ts.clear();
        let mut sorted: Vec<&(String, String)> = labels.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in sorted {
            item.clear();
            bytes_field(&mut item, 1, k.as_bytes());
            bytes_field(&mut item, 2, v.as_bytes());
            bytes_field(&mut ts, 1, &item);
        }
        item.clear();
        varint(&mut item, (1 << 3) | 1);
        item.extend_from_slice(&value.to_le_bytes());
        varint(&mut item, 2 << 3);
        varint(&mut item, at.unwrap_or(timestamp_ms) as u64);
        bytes_field(&mut ts, 2, &item);
        bytes_field(&mut req, 1, &ts);
    }
    req
}

/// A remote-write client.
#[derive(Debug, Clone)]
pub struct RemoteWrite {
    url: String,
    batch: usize,
    client: reqwest::Client,
}

fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    r.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

impl RemoteWrite {
    /// A client for `url`, sending at most `batch` series per request.
    pub fn new(url: &str, batch: usize, timeout: Duration) -> Result<RemoteWrite, SinkError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| SinkError::permanent(format!("remote write client: {e}")))?;
        Ok(RemoteWrite {
            url: url.to_owned(),
            batch: batch.max(1),
            client,
        })
    }

    /// Pushes every sample, batch by batch; each batch is retried (3 tries, backoff from 100 ms, or the
    /// receiver's `Retry-After`) before the push fails. A 4xx other than 429 is permanent.
    pub async fn push(&self, samples: &[Sample]) -> Result<(), SinkError> {
        for chunk in samples.chunks(self.batch) {
            let mut delay = Duration::from_millis(100);
            let mut attempt = 0;
            loop {
                attempt += 1;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                let body = snap::raw::Encoder::new()
                    .compress_vec(&encode(chunk, now))
                    .map_err(|e| SinkError::permanent(format!("snappy: {e}")))?;
                let sent = self
                    .client
                    .post(&self.url)
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(body)
                    .send()
                    .await;
                let err = match sent {
                    Ok(r) if r.status().is_success() => break,
                    Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                        let after = retry_after(&r);
                        let e = SinkError::retriable(format!("remote write: HTTP {}", r.status()));
                        match after {
                            Some(a) => e.after(a),
                            None => e,
                        }
                    }
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        // Out-of-order or duplicate samples are refused with 400; they are older than what
                        // the receiver has, so there is nothing to resend.
                        if text.contains("out of order") || text.contains("duplicate sample") {
                            break;
                        }
                        return Err(SinkError::permanent(format!(
                            "remote write: HTTP {status}: {text}"
                        )));
                    }
                    Err(e) => SinkError::retriable(format!("remote write: {e}")),
                };
                if attempt >= 3 {
                    return Err(err);
                }
                tokio::time::sleep(
                    err.retry_after
                        .unwrap_or(delay)
                        .min(Duration::from_secs(30)),
                )
                .await;
                delay *= 2;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn parses_the_exposition_back() {
        let s = samples(
            "# TYPE x_total counter\nx_total{a=\"q\\\"\\\\\",b=\"2\"} 3\ny 1.5\nz_bucket{le=\"+Inf\"} 4\n",
        );
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[0].0,
            vec![
                ("__name__".to_owned(), "x_total".to_owned()),
                ("a".to_owned(), "q\"\\".to_owned()),
                ("b".to_owned(), "2".to_owned())
            ]
        );
        assert_eq!(s[0].1, 3.0);
        assert_eq!(s[1].0.len(), 1);
        assert_eq!(s[2].0[1], ("le".to_owned(), "+Inf".to_owned()));
        let pb = encode(&s, 1000);
        assert_eq!(pb[0], 0x0a, "field 1, length-delimited");
    }

    #[test]
    fn reads_sample_timestamps_and_only_those() {
        let s = samples(
            "x_total{a=\"q 5\"} 3 1700000000123\nx_total{a=\"q 5\"} 3\ny 1.5\ny 1.5 42\nz{l=\"a 7\"} NaN 9\n",
        );
        let got: Vec<(f64, Option<i64>)> = s.iter().map(|(_, v, t)| (*v, *t)).collect();
        assert_eq!(got[0], (3.0, Some(1_700_000_000_123)));
        assert_eq!(got[1], (3.0, None));
        assert_eq!((got[2], got[3]), ((1.5, None), (1.5, Some(42))));
        assert!(got[4].0.is_nan() && got[4].1 == Some(9));
        assert_eq!(s[0].0[1], ("a".to_owned(), "q 5".to_owned()));
    }
}
