//! What a consumer group looks like from the broker: its members and each one's assigned partitions.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::Kafka;

/// The partitions each member of consumer group `group` is assigned, one list per member (members with no
/// assignment yet are left out): Kafka's consumer protocol assignment (version, then per topic its name and
/// partitions), as DescribeGroups returns it.
pub fn group_assignments(kafka: &Kafka, group: &str) -> Vec<Vec<(String, i32)>> {
    group_members(kafka, group)
        .into_iter()
        .map(|(_, assigned)| assigned)
        .collect()
}

/// Each member of consumer group `group` with an assignment: its member id (the broker gives a new one to
/// every new consumer, so an id that stays means a consumer that kept its membership) and its partitions.
pub fn group_members(kafka: &Kafka, group: &str) -> Vec<(String, Vec<(String, i32)>)> {
    let Ok(consumer) = kafka.config().create::<BaseConsumer>() else {
        return Vec::new();
    };
    let Ok(list) = consumer.fetch_group_list(Some(group), Duration::from_secs(10)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for g in list.groups() {
        for m in g.members() {
            if let Some(bytes) = m.assignment() {
                out.push((m.id().to_owned(), parse_assignment(bytes)));
            }
        }
    }
    out
}

/// Decodes a consumer protocol assignment; a truncated one gives what it holds.
fn parse_assignment(b: &[u8]) -> Vec<(String, i32)> {
    let i16_at = |i: usize| b.get(i..i + 2).map(|s| i16::from_be_bytes([s[0], s[1]]));
    let i32_at = |i: usize| {
        b.get(i..i + 4)
            .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    };
    let mut out = Vec::new();
    let mut at = 2; // version
    let Some(topics) = i32_at(at) else {
        return out;
    };
    at += 4;
    for _ in 0..topics {
        let Some(len) = i16_at(at).and_then(|l| usize::try_from(l).ok()) else {
            return out;
        };
        at += 2;
        let Some(name) = b.get(at..at + len) else {
            return out;
        };
        let topic = String::from_utf8_lossy(name).into_owned();
        at += len;
        let Some(partitions) = i32_at(at) else {
            return out;
        };
        at += 4;
        for _ in 0..partitions {
            let Some(p) = i32_at(at) else {
                return out;
            };
            out.push((topic.clone(), p));
            at += 4;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse_assignment;

    #[test]
    fn decodes_an_assignment() {
        let mut b = vec![
            0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 5,
        ];
        assert_eq!(
            parse_assignment(&b),
            vec![("t".to_owned(), 3), ("t".to_owned(), 5)]
        );
        b.truncate(17);
        assert_eq!(parse_assignment(&b), vec![("t".to_owned(), 3)]);
    }
}
